#!/usr/bin/env node
'use strict';
let main;
try {
  ({ main } = require('../dist/src/cli.js'));
} catch (err) {
  if (err.code === 'MODULE_NOT_FOUND' && /dist[\\/]src[\\/]cli/.test(err.message)) {
    console.error('pws-server: not built yet: run "npm install" (or "npm run build") in the package folder first');
    process.exit(1);
  }
  console.error(`pws-server: ${err.message}`);
  process.exit(1);
}
main(process.argv.slice(2)).then(
  (code) => {
    if (code !== null) process.exit(code);
  },
  (err) => {
    console.error(`pws-server: ${err && err.message ? err.message : err}`);
    process.exit(1);
  },
);
