#!/usr/bin/env bash
# Prints the compiled test files `npm run test:suite` runs (from the repo root, after the build).
# PWS_TEST_SUBSET=node-matrix leaves out the cluster's fault-injection suite (dist/test/cluster/faults):
# it exercises Redis-side logic that is the same JavaScript on every Node, and it is the slowest part,
# so the Node 22 and 24 runs (scripts/test-node-matrix.sh) take every other file: WebSocket, REST,
# metrics, the uWS build, the cluster's delivery, presence, Sentinel and Redis Cluster, and webhooks.
# It also leaves out the SQL app-store tests (dist/test/apps/sql, against a real PostgreSQL and
# MariaDB): the store is the same JavaScript on every Node, on the `pg` and `mysql2` clients, and
# leaving them out spares the Debian 13 root installing postgresql and mariadb-server (test-setup.sh
# skips them for this subset). So does the helpers' own self-test (dist/test/helpers/databases.test.js):
# without the packages it would skip, and under CI=true fail.
# It also leaves out the console's tests (dist/test/console): most drive a headless chromium, the slowest
# tests after the faults, and the console is the same JavaScript on every Node, so the host's run covers it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "${PWS_TEST_SUBSET:-all}" in
  all) find dist/test -name '*.test.js' | sort ;;
  node-matrix) find dist/test -name '*.test.js' -not -path 'dist/test/cluster/faults/*' -not -path 'dist/test/apps/sql/*' -not -path 'dist/test/helpers/databases.test.js' -not -path 'dist/test/console/*' | sort ;;
  *) echo "test-files: unknown PWS_TEST_SUBSET=$PWS_TEST_SUBSET (all or node-matrix)" >&2; exit 2 ;;
esac
