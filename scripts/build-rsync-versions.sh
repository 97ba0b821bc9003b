#!/bin/sh
# Builds the rsync versions the test matrix runs (test/fixtures/rsync/*.tar.gz,
# upstream tags) into a cache outside the repository, once: a version already
# built is skipped. Two build side by side. Needs gcc, make, autoconf and
# automake (scripts/ensure-deps.sh test installs them).
# Cache: $STANDBY_RSYNC_CACHE, else $XDG_CACHE_HOME/standby-rsync, else ~/.cache/standby-rsync;
# each version lands in CACHE/<version>-<first 12 hex of the tarball's sha256>/rsync.
set -eu
cd "$(dirname "$0")/.."
sources=$PWD/test/fixtures/rsync
cache=${STANDBY_RSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/standby-rsync}
mkdir -p "$cache"

build_one() {
  tarball=$1
  version=$(basename "$tarball" .tar.gz | sed 's/^rsync-//')
  sum=$(sha256sum "$tarball" | cut -c1-12)
  dest="$cache/$version-$sum"
  [ -x "$dest/rsync" ] && return 0
  work=$(mktemp -d "$cache/.build-$version-XXXXXX")
  log="$work/build.log"
  echo "standby: building rsync $version into $dest (about a minute)" >&2
  # the tarballs are `git archive` of upstream tags: configure is there, the man pages are not
  if ! (tar xzf "$tarball" -C "$work" \
        && cd "$work/rsync-$version" \
        && ./configure --disable-md2man --disable-xxhash --disable-zstd --disable-lz4 --disable-openssl \
        && make -j1 rsync) >"$log" 2>&1; then
    echo "standby: building rsync $version failed; the last lines of $log:" >&2
    tail -n 20 "$log" >&2
    return 1
  fi
  mkdir -p "$work/out"
  cp "$work/rsync-$version/rsync" "$work/out/rsync"
  # another build of the same version may have finished first: keep one
  mv -T "$work/out" "$dest" 2>/dev/null || true
  rm -rf "$work"
  [ -x "$dest/rsync" ]
}

# one builder at a time per cache (two test runs started together share the work)
exec 9>"$cache/.lock"
flock 9
failed=0
pids=""
for tarball in "$sources"/rsync-*.tar.gz; do
  build_one "$tarball" &
  pids="$pids $!"
  # two at a time: two cores
  if [ "$(echo $pids | wc -w)" -ge 2 ]; then
    for p in $pids; do wait "$p" || failed=1; done
    pids=""
  fi
done
for p in $pids; do wait "$p" || failed=1; done
exit $failed
