#!/bin/sh
# Standby's one-line installer, served by the proxy at /_standby/install.sh:
#   curl -fsSL https://PROXY/_standby/install.sh | sudo STANDBY_TOKEN=... sh -s -- agent --standby-host cpu-1 ...
# It installs the packages the role needs, downloads the program bundle from the
# same proxy (and nowhere else), checks its sha256, and runs
# `<bundle>/bin/standby install ROLE ARGS...`. Options before the role:
#   --insecure   accept the proxy's certificate unchecked (curl -k): only for a
#                self-signed proxy you trust, on a network you trust.
set -eu

# the proxy bakes its own URL in when it serves this script; STANDBY_PROXY_URL wins
proxy_url="${STANDBY_PROXY_URL:-__STANDBY_PROXY_URL__}"
curl_opts="-fsSL --retry 3"

die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --insecure) curl_opts="$curl_opts -k"; echo "install.sh: --insecure: the proxy's certificate is NOT checked" >&2; shift ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || die "name a role: agent, standby or proxy (e.g. ... | sudo sh -s -- agent --standby-host HOST)"
role="$1"
case "$role" in agent|standby|proxy) ;; *) die "unknown role '$role': expected agent, standby or proxy" ;; esac

# installing under --root (tests) needs no root; everything else does
case " $* " in *" --root "*) ;; *)
  [ "$(id -u)" = 0 ] || die "run as root: curl -fsSL $proxy_url/_standby/install.sh | sudo sh -s -- $*" ;;
esac
case "$proxy_url" in http://*|https://*) ;; *) die "no proxy URL: set STANDBY_PROXY_URL=https://PROXY (the script was not served by a proxy)" ;; esac

case "$role" in
  agent) need="rsync ssh ssh-keygen"; pkgs="rsync openssh-client" ;;
  standby) need="rsync sshd"; pkgs="rsync openssh-server" ;;
  proxy) need="ssh-keygen"; pkgs="openssh-client" ;;
esac
missing=""
for b in $need tar gzip sha256sum; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing="$missing $b"
done
if [ -n "$missing" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "install.sh: installing $pkgs (missing:$missing)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs tar gzip coreutils >/dev/null
  else
    die "missing:$missing. Install the packages $pkgs (and tar, gzip, coreutils) with your package manager, then run this again"
  fi
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/standby-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
echo "install.sh: downloading the program from $proxy_url" >&2
curl $curl_opts -o "$tmp/bundle.tar.gz" "$proxy_url/_standby/bundle.tar.gz" || die "could not download $proxy_url/_standby/bundle.tar.gz (is the proxy up and reachable from here?)"
curl $curl_opts -o "$tmp/bundle.sha256" "$proxy_url/_standby/bundle.sha256" || die "could not download $proxy_url/_standby/bundle.sha256"
(cd "$tmp" && sha256sum -c --quiet bundle.sha256) || die "the bundle's sha256 does not match bundle.sha256: not installing. Try again; if it persists, check what sits between you and the proxy"
mkdir "$tmp/standby"
tar -xzf "$tmp/bundle.tar.gz" -C "$tmp/standby" || die "could not unpack the bundle (disk full?)"
"$tmp/standby/bin/standby" install "$@"
