#!/bin/sh
# Installs what `npm run demo`, `npm test`, `npm run test:quick` and `npm run
# bench` need on a fresh Debian machine: the npm dependencies (which pin Node 24
# through the npm `node` package) and, as root, the Debian packages. Without
# root it names what is missing and stops. `code-server`: what `standby demo
# --server code-server` needs, the build packages and code-server itself in its
# cache (the plain demo does without: it stays fast). Usage:
# ensure-deps.sh [demo|test|quick|bench|code-server]
set -eu
cd "$(dirname "$0")/.."
purpose=${1:-demo}

# npm dependencies: reinstall only when package-lock.json changed since the last install.
stamp=node_modules/.standby-lock-sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -L node_modules ] && [ -x node_modules/.bin/node ]; then
  # a checkout that borrows another's node_modules (a git worktree): npm ci would empty the shared tree
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] || echo "standby: node_modules is a link to another checkout's and package-lock.json differs from what it holds: not reinstalling it here (run npm ci where it lives)" >&2
else
  if [ ! -x node_modules/.bin/node ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "standby: installing npm dependencies (npm ci)" >&2
    npm ci --no-audit --no-fund --loglevel=error
  fi
  # npm skips an optional package whose engines the Node running npm does not meet (the proxy's
  # @google-cloud/compute needs Node >= 22, the system's may be older): once the pinned Node is
  # in place, install again with npm running on it (checked every time: a tree installed by an
  # older version of this script may lack them)
  missing=$(node_modules/.bin/node -e 'const p = require("./package.json"); const fs = require("fs"); console.log(Object.keys(p.optionalDependencies ?? {}).filter((n) => !fs.existsSync("node_modules/" + n)).join(" "))')
  if [ -n "$missing" ]; then
    echo "standby: npm skipped $missing under $(node --version 2>/dev/null || echo 'the system Node'): installing again on the pinned Node" >&2
    PATH="$PWD/node_modules/.bin:$PATH" npm ci --no-audit --no-fund --loglevel=error
  fi
  echo "$want" > "$stamp"
fi

# Debian packages: command (or a file, when it starts with /) -> package.
need="rsync:rsync ssh:openssh-client sshd:openssh-server"
# code-server from npm builds native modules (node-gyp: a C++ compiler, make, python3, pkg-config) and
# links Kerberos (libkrb5-dev); installer/code-server.ts installs it into a cache outside the repository
code_server="g++:g++ make:make python3:python3 pkg-config:pkg-config /usr/include/krb5.h:libkrb5-dev /usr/include/stdio.h:libc6-dev"
case "$purpose" in
  # the unit tests start no process: Node is all they need
  quick) need="" ;;
  # gcc, make, autoconf and automake build the rsync versions of the test matrix
  test) need="$need chromium:chromium ip:iproute2 flock:util-linux openssl:openssl systemd-analyze:systemd perl:perl-base gcc:gcc make:make autoconf:autoconf aclocal:automake /usr/include/stdio.h:libc6-dev $code_server" ;;
  code-server) need="$need flock:util-linux $code_server" ;;
  # bench/editor drives Chromium against a real code-server on each side
  bench) need="$need lsyncd:lsyncd haproxy:haproxy nginx:nginx wrk:wrk taskset:util-linux ip:iproute2 chromium:chromium flock:util-linux $code_server" ;;
esac
missing=""
for pair in $need; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  case "$cmd" in
    /*) [ -e "$cmd" ] && continue ;;
    *) { command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ]; } && continue ;;
  esac
  case " $missing " in *" $pkg "*) ;; *) missing="$missing $pkg" ;; esac
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "standby: installing Debian packages:$missing" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "standby: missing Debian packages:$missing" >&2
    echo "  install them with: sudo apt-get install$missing" >&2
    exit 1
  fi
fi

# The test matrix's rsync versions, built once into a cache outside the repository.
if [ "$purpose" = test ]; then
  sh scripts/build-rsync-versions.sh
fi

# code-server, once into its cache ($STANDBY_CODE_SERVER_CACHE, else ~/.cache/standby-code-server):
# the browser tests start it, and must never install it inside a test's timeout. Quiet when it is there.
if [ "$purpose" = test ] || [ "$purpose" = code-server ] || [ "$purpose" = bench ]; then
  node_modules/.bin/node scripts/ensure-code-server.ts
fi
