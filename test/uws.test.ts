// Start-up refuses uWebSockets.js's pure-JS fallback: without a native binary for this platform,
// loading fails with a clear error instead of quietly running slow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadNative, uws } from '../src/uws';

test('the loaded module is the native binary, not the JS fallback', () => {
  const pkgDir = path.dirname(require.resolve('uWebSockets.js/package.json'));
  const binary = path.join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  assert.equal(require.cache[binary]?.exports, uws);
  assert.equal(Object.keys(require.cache).some((file) => file.startsWith(path.join(pkgDir, 'dist'))), false);
});

test('a package copy whose binaries do not fit this Node refuses to load, naming the platform', (t) => {
  const pkgDir = path.dirname(require.resolve('uWebSockets.js/package.json'));
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'pws-uws-'));
  t.after(() => fs.rmSync(copy, { recursive: true, force: true }));
  // The package as published, with the JS fallback (dist/) but only other platforms' binaries.
  fs.cpSync(path.join(pkgDir, 'dist'), path.join(copy, 'dist'), { recursive: true });
  fs.mkdirSync(path.join(copy, 'binaries'));
  fs.copyFileSync(path.join(pkgDir, 'binaries', 'uws_win32_x64_115.node'), path.join(copy, 'binaries', 'uws_win32_x64_115.node'));
  assert.throws(() => loadNative(copy), (err: Error) => {
    assert.match(err.message, new RegExp(`no native build for this platform \\(${process.platform}-${process.arch}, Node ABI ${process.versions.modules}\\)`));
    assert.match(err.message, /Refusing its slow pure-JS fallback/);
    return true;
  });
});
