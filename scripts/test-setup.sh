#!/usr/bin/env bash
# Prepares everything `npm test` needs (run by npm's "pretest", from the repo root):
#   1. npm dependencies (when node_modules is missing or older than package.json / package-lock.json);
#   2. the Debian packages `prometheus` (prometheus + promtool), `prometheus-pushgateway`,
#      `redis-server`, `redis-tools` (redis-cli), `postgresql` and `mariadb-server`
#      (as root with apt-get, else with `sudo -n`, else a message: tests then skip, except under CI=true);
#      with PWS_TEST_SUBSET=node-matrix (the Node 22/24 runs, which leave out the SQL tests, see
#      scripts/test-files.sh) not postgresql and mariadb-server;
#   3. a fresh TypeScript build into dist/.
# Quiet when everything is already present; a warm run takes a few seconds (mostly tsc).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { echo "test-setup: $*" >&2; }

is_ci() { [ "${CI:-}" = "true" ]; }

# ---------------------------------------------------------------- 1. npm dependencies
NPM_STAMP=node_modules/.pws-test-setup-stamp
need_npm_install() {
  [ -d node_modules ] || return 0
  [ -x node_modules/.bin/tsc ] || return 0
  [ -f "$NPM_STAMP" ] || return 0
  [ package.json -nt "$NPM_STAMP" ] && return 0
  [ -f package-lock.json ] && [ package-lock.json -nt "$NPM_STAMP" ] && return 0
  return 1
}
if need_npm_install; then
  if [ -f package-lock.json ]; then
    log "installing npm dependencies (npm ci)"
    npm ci --no-audit --no-fund
  else
    log "installing npm dependencies (npm install)"
    npm install --no-audit --no-fund
  fi
  touch "$NPM_STAMP"
fi

# ---------------------------------------------------------------- 2. Debian packages
DEB_PACKAGES=(prometheus prometheus-pushgateway redis-server redis-tools)
DEB_TOOLS=(prometheus promtool prometheus-pushgateway redis-server redis-cli)
# The real PostgreSQL and MariaDB of the SQL app-store tests (test/helpers/databases.ts). Debian
# keeps PostgreSQL's initdb and postgres in /usr/lib/postgresql/<major>/bin, off PATH (have_tool
# looks there); mariadbd is in /usr/sbin, mariadb-install-db in /usr/bin. The Node 22/24 runs
# (PWS_TEST_SUBSET=node-matrix) leave those tests out, so they do not install them; nor the
# chromium of the console's browser tests (test/console), which they leave out too.
if [ "${PWS_TEST_SUBSET:-all}" != node-matrix ]; then
  DEB_PACKAGES+=(postgresql mariadb-server chromium)
  DEB_TOOLS+=(initdb postgres mariadbd mariadb-install-db chromium)
fi

have_tool() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/bin/$1" ] || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/bin/$1" ] ||
    compgen -G "/usr/lib/postgresql/*/bin/$1" >/dev/null
}
missing_tools() {
  local t out=()
  for t in "${DEB_TOOLS[@]}"; do have_tool "$t" || out+=("$t"); done
  echo "${out[*]:-}"
}

# Run a command as root: directly when we are root, else via non-interactive sudo.
AS_ROOT=()
can_be_root() {
  if [ "$(id -u)" -eq 0 ]; then AS_ROOT=(); return 0; fi
  if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then AS_ROOT=(sudo -n); return 0; fi
  return 1
}

apt_lists_empty() {
  ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

APT_ENV=(env DEBIAN_FRONTEND=noninteractive)
APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

apt_install() {
  "${AS_ROOT[@]}" "${APT_ENV[@]}" apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${DEB_PACKAGES[@]}"
}
apt_update() {
  "${AS_ROOT[@]}" "${APT_ENV[@]}" apt-get "${APT_OPTS[@]}" update
}

# The packages' maintainer scripts try to start their daemons via invoke-rc.d, which fails or
# leaves stray daemons on :9090/:9091/:6379 in a container without systemd. A policy-rc.d that exits
# 101 makes invoke-rc.d skip starting them; we only add one (and remove it after) if none exists.
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_RC_ADDED=0
add_policy_rc() {
  if [ ! -e "$POLICY_RC" ]; then
    printf '#!/bin/sh\n# added by pws-server scripts/test-setup.sh during apt-get install\nexit 101\n' |
      "${AS_ROOT[@]}" tee "$POLICY_RC" >/dev/null
    "${AS_ROOT[@]}" chmod 755 "$POLICY_RC"
    POLICY_RC_ADDED=1
  fi
}
remove_policy_rc() {
  if [ "$POLICY_RC_ADDED" = 1 ]; then
    "${AS_ROOT[@]}" rm -f "$POLICY_RC" || true
    POLICY_RC_ADDED=0
  fi
}

# Stop a packaged daemon if the install started one anyway (our tests start their own
# instances on free loopback ports and must not collide with, or depend on, these).
# One line per daemon: name (also its systemd unit), pid file, binary; the last two may be globs.
# postgresql: the postinst creates the cluster <major>/main (not started) and starts it through
# invoke-rc.d (pg_ctlcluster); its postmaster writes /run/postgresql/<major>-main.pid.
# mariadb: the postinst starts it through invoke-rc.d (the init script runs mysqld_safe, which
# restarts a mariadbd that dies of anything but a clean shutdown: SIGTERM, with time to finish).
PACKAGED_DAEMONS=(
  "prometheus /run/prometheus/prometheus.pid /usr/bin/prometheus"
  "prometheus-pushgateway /run/prometheus/prometheus-pushgateway.pid /usr/bin/prometheus-pushgateway"
  "redis-server /run/redis/redis-server.pid /usr/bin/redis-server"
  "postgresql /run/postgresql/*-main.pid /usr/lib/postgresql/*/bin/postgres"
  "mariadb /run/mysqld/mysqld.pid /usr/sbin/mariadbd"
)

have_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

# True while process $1 runs (a zombie no longer counts: PID 1 in a container may never reap it).
proc_alive() { [ -r "/proc/$1/stat" ] && ! grep -q ') [ZX] ' "/proc/$1/stat" 2>/dev/null; }

# "pid pidfile" lines for the packaged daemon's pid file(s) whose process runs the package's binary
# (compared after resolving links: Debian's /usr/bin/redis-server links to redis-check-rdb).
daemon_pid() {
  local pidglob="$1" binglob="$2" pidfile bin pid exe want
  while IFS= read -r pidfile; do
    [ -r "$pidfile" ] || continue
    pid="$(head -n1 "$pidfile" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    exe="$(readlink -f "/proc/$pid/exe" 2>/dev/null || true)"
    [ -n "$exe" ] || continue
    while IFS= read -r bin; do
      want="$(readlink -f "$bin" 2>/dev/null || echo "$bin")"
      if [ "$exe" = "$want" ]; then echo "$pid $pidfile"; break; fi
    done < <(compgen -G "$binglob" || echo "$binglob")
  done < <(compgen -G "$pidglob" || true)
  return 0
}

daemon_running() {
  local name="$1" pidfile="$2" bin="$3"
  if have_systemd && systemctl is-active --quiet "$name" 2>/dev/null; then return 0; fi
  [ -n "$(daemon_pid "$pidfile" "$bin")" ]
}

# Names of the packaged daemons running before the install: those are the user's, left alone.
DAEMONS_BEFORE=" "
note_running_daemons() {
  local entry name pidfile bin
  DAEMONS_BEFORE=" "
  for entry in "${PACKAGED_DAEMONS[@]}"; do
    read -r name pidfile bin <<<"$entry"
    if daemon_running "$name" "$pidfile" "$bin"; then DAEMONS_BEFORE+="$name "; fi
  done
}

stop_packaged_daemons() {
  local entry name pidfile bin pid file
  for entry in "${PACKAGED_DAEMONS[@]}"; do
    read -r name pidfile bin <<<"$entry"
    [[ "$DAEMONS_BEFORE" == *" $name "* ]] && continue
    # Under systemd (Restart=always for redis-server), kill would only get it restarted: stop the unit.
    if have_systemd && systemctl is-active --quiet "$name" 2>/dev/null; then
      log "stopping the $name service started by the package install"
      "${AS_ROOT[@]}" systemctl stop "$name" 2>/dev/null || true
    fi
    while read -r pid file; do
      log "stopping the $name daemon (pid $pid) started by the package install"
      "${AS_ROOT[@]}" kill "$pid" 2>/dev/null || true
      # Up to 15 s: a clean shutdown (PostgreSQL, MariaDB) may take a few seconds.
      for _ in $(seq 30); do proc_alive "$pid" || break; sleep 0.5; done
      if proc_alive "$pid"; then "${AS_ROOT[@]}" kill -9 "$pid" 2>/dev/null || true; fi
      "${AS_ROOT[@]}" rm -f "$file" 2>/dev/null || true
    done < <(daemon_pid "$pidfile" "$bin")
  done
}

install_debian_packages() {
  note_running_daemons
  add_policy_rc
  trap remove_policy_rc EXIT
  local rc=0
  if apt_lists_empty; then
    apt_update >/dev/null || true
  fi
  if ! apt_install >/tmp/pws-test-setup-apt.$$.log 2>&1; then
    log "apt-get install failed; running apt-get update and retrying"
    apt_update >/dev/null 2>&1 || true
    apt_install >>/tmp/pws-test-setup-apt.$$.log 2>&1 || rc=$?
  fi
  if [ "$rc" -ne 0 ]; then
    cat /tmp/pws-test-setup-apt.$$.log >&2 || true
  fi
  rm -f /tmp/pws-test-setup-apt.$$.log
  remove_policy_rc
  trap - EXIT
  stop_packaged_daemons
  return "$rc"
}

MISSING="$(missing_tools)"
if [ -n "$MISSING" ]; then
  if can_be_root; then
    log "installing Debian packages ${DEB_PACKAGES[*]} (missing: $MISSING)"
    install_debian_packages || log "apt-get install ${DEB_PACKAGES[*]} failed"
  fi
  MISSING="$(missing_tools)"
  if [ -n "$MISSING" ]; then
    log "missing $MISSING: install the Debian packages ${DEB_PACKAGES[*]}"
    log "  (sudo apt-get install ${DEB_PACKAGES[*]}), or run npm test as root."
    if is_ci; then
      log "CI=true: a missing service is a failure."
      exit 1
    fi
    log "Tests that need them will be skipped."
  fi
fi

# ---------------------------------------------------------------- 3. TypeScript build
rm -rf dist
if [ -x node_modules/.bin/tsc ]; then
  node_modules/.bin/tsc -p .
else
  npx --no-install tsc -p .
fi
bash scripts/build-console.sh
