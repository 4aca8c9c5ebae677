#!/usr/bin/env bash
# Builds the console's front end (src/console/web: browser modules with their own tsconfig, for the
# DOM, plus the HTML and CSS) into dist/src/console/web, where the server reads it at start.
# Part of `npm run build`; run after the server's own `tsc -p .`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -x node_modules/.bin/tsc ]; then
  node_modules/.bin/tsc -p src/console/web/tsconfig.json
else
  npx --no-install tsc -p src/console/web/tsconfig.json
fi
cp src/console/web/*.html src/console/web/*.css dist/src/console/web/
