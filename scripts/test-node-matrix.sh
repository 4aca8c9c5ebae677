#!/usr/bin/env bash
# The test suite under Node.js 22 and 24, each in the Debian 13 root of scripts/node-root.sh (the
# uWebSockets.js build for those Nodes needs glibc 2.38). `npm test` runs this after the suite on
# this machine's Node. Each takes every test file but the cluster's fault-injection suite and the
# SQL app-store tests (PWS_TEST_SUBSET=node-matrix, see scripts/test-files.sh), which keeps CI well under 30 minutes. PWS_TEST_NODES picks the majors (default "22 24"; empty: none).
# Needs root; elsewhere it says so and skips, except under CI=true, where that is a failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NODES="${PWS_TEST_NODES-22 24}"
# Inside the root itself (a fresh clone there runs npm test too), the suite that just ran is the test.
if [ -f /.pws-root-ready ]; then
  echo "test-node-matrix: inside the Debian 13 root: the suite just ran on Node $(node --version)" >&2
  exit 0
fi
[ -n "$NODES" ] || exit 0
if [ "$(id -u)" -ne 0 ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "test-node-matrix: CI=true: the suite under Node $NODES needs root (debootstrap, chroot)" >&2
    exit 1
  fi
  echo "test-node-matrix: skipping the suite under Node $NODES: run npm test as root (it builds a Debian 13 root with debootstrap)" >&2
  exit 0
fi
for major in $NODES; do
  start=$SECONDS
  # The subset for test-setup.sh too: it then skips the Debian packages only the left-out tests need.
  bash scripts/node-root.sh "$major" 'export PWS_TEST_SUBSET=node-matrix && bash scripts/test-setup.sh && npm run test:suite'
  echo "test-node-matrix: Node $major passed in $((SECONDS - start)) s" >&2
done
