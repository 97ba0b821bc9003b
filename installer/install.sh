#!/bin/sh
# Standby's one-line installer, served by the proxy at /_standby/install.sh:
#   curl -fsSL https://PROXY/_standby/install.sh | sudo bash -s -- agent --token sbi_...     (from `standby hosts add gpu-1`)
#   curl -fsSL https://PROXY/_standby/install.sh | sudo bash -s -- standby --token sbd_...   (from `standby hosts add cpu-1`)
# It installs the packages the role needs, downloads the program bundle from the
# same proxy (and nowhere else) with the token it is given (--token, or
# STANDBY_TOKEN; an installed agent's own token when neither: an upgrade),
# checks its sha256, and runs
# `<bundle>/bin/standby install ROLE ARGS...`, adding `--proxy PROXY` for the
# agent and the standby unless ARGS name one (the standby fetches the proxy's
# fencing key from there). Options before the role:
#   --insecure   accept the proxy's certificate unchecked (curl -k, and the
#                standby's fetch of the fencing key): only for a self-signed
#                proxy you trust, on a network you trust.
set -eu

# the proxy bakes its own URL in when it serves this script; STANDBY_PROXY_URL wins
proxy_url="${STANDBY_PROXY_URL:-__STANDBY_PROXY_URL__}"
curl_opts="-fsSL --retry 3"
insecure=""

die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --insecure) curl_opts="$curl_opts -k"; insecure=1; echo "install.sh: --insecure: the proxy's certificate is NOT checked" >&2; shift ;;
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

# the credential the proxy wants for the program: STANDBY_DOWNLOAD_TOKEN, else --token or STANDBY_TOKEN (not for
# the proxy role, where they are primary.agentToken), else (an agent's upgrade) the installed agent's own token
token="${STANDBY_DOWNLOAD_TOKEN:-}"
[ -n "$token" ] || [ "$role" = proxy ] || token="${STANDBY_TOKEN:-}"
prefix=""
prev=""
for a in "$@"; do
  [ -n "${STANDBY_DOWNLOAD_TOKEN:-}" ] || [ "$role" = proxy ] || case "$prev" in --token) token="$a" ;; esac
  [ -n "${STANDBY_DOWNLOAD_TOKEN:-}" ] || [ "$role" = proxy ] || case "$a" in --token=*) token="${a#--token=}" ;; esac
  case "$prev" in --root) prefix="$a" ;; esac
  case "$a" in --root=*) prefix="${a#--root=}" ;; esac
  prev="$a"
done
if [ -z "$token" ] && [ "$role" = agent ] && [ -r "$prefix/etc/standby/agent.json" ]; then
  token=$(sed -n 's/^ *"token": *"\([^"]*\)".*/\1/p' "$prefix/etc/standby/agent.json" | head -n 1)
fi

case "$role" in
  agent) need="rsync ssh ssh-keygen" ;;
  standby) need="rsync sshd" ;;
  proxy) need="ssh-keygen" ;;
esac
# the package each command comes in (Debian/Ubuntu names)
package_of() {
  case "$1" in
    ssh|ssh-keygen) echo openssh-client ;;
    sshd) echo openssh-server ;;
    sha256sum|mktemp) echo coreutils ;;
    *) echo "$1" ;;
  esac
}
check() {
  missing=""; pkgs=""
  for b in $need curl tar gzip sha256sum mktemp; do
    command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || {
      missing="$missing $b"
      p=$(package_of "$b")
      case " $pkgs " in *" $p "*) ;; *) pkgs="${pkgs:+$pkgs }$p" ;; esac
    }
  done
}
check
if [ -n "$missing" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "install.sh: installing $pkgs (missing:$missing)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed; install $pkgs by hand, then run this again"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null || die "apt-get install $pkgs failed; install them by hand, then run this again"
    check
    [ -z "$missing" ] || die "still missing after apt-get install $pkgs:$missing"
  elif command -v apt-get >/dev/null 2>&1; then
    die "missing:$missing. Install the package(s) $pkgs (sudo apt-get install $pkgs), or run this as root and it installs them; then run this again"
  else
    die "missing:$missing. Install the package(s) $pkgs with your package manager (the names may differ off Debian/Ubuntu), then run this again"
  fi
fi

[ -n "$token" ] || die "no token: the proxy gives the program only with one. On the proxy, \`standby hosts add ID\` prints this host's line with its token (the standby's id for the standby, e.g. cpu-1; STANDBY_DOWNLOAD_TOKEN=<admin token> for another proxy)"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/standby-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
# the token goes to curl in a file of the private folder, not on its command line
( umask 077; printf 'Authorization: Bearer %s\n' "$token" > "$tmp/auth" )
echo "install.sh: downloading the program from $proxy_url" >&2
# two downloads: a proxy upgraded between them serves a checksum of another bundle, so a mismatch is tried once more
verified=""
for attempt in 1 2; do
  curl $curl_opts -H @"$tmp/auth" -o "$tmp/bundle.sha256" "$proxy_url/_standby/bundle.sha256" || die "could not download $proxy_url/_standby/bundle.sha256 (is the proxy up and reachable from here? HTTP 401: the token is wrong, used up or expired: ask for a new line with standby hosts add ID)"
  curl $curl_opts -H @"$tmp/auth" -o "$tmp/bundle.tar.gz" "$proxy_url/_standby/bundle.tar.gz" || die "could not download $proxy_url/_standby/bundle.tar.gz"
  if (cd "$tmp" && sha256sum -c --quiet bundle.sha256 >/dev/null 2>&1); then verified=1; break; fi
  [ "$attempt" = 2 ] || echo "install.sh: the bundle does not match bundle.sha256 (was the proxy upgraded meanwhile?): downloading both again" >&2
done
[ -n "$verified" ] || die "the bundle's sha256 does not match bundle.sha256, twice: not installing. Check what sits between you and the proxy"
mkdir "$tmp/standby"
tar -xzf "$tmp/bundle.tar.gz" -C "$tmp/standby" || die "could not unpack the bundle (disk full?)"

# the agent reports to this proxy and the standby fetches its fencing key from it, unless told another URL
case "$role" in agent|standby)
  case " $* " in *" --proxy "*|*" --proxy="*) ;; *) set -- "$@" --proxy "$proxy_url" ;; esac
  # --insecure: the standby's fetch of the fencing key trusts the proxy's certificate as curl -k did
  [ -z "$insecure" ] || export NODE_TLS_REJECT_UNAUTHORIZED=0 ;;
esac
"$tmp/standby/bin/standby" install "$@"
