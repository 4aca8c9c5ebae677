// The native uWebSockets.js build: the newest build that loads here is the one in use, the pure-JS
// fallback never is, and without any loadable build start-up refuses with one line that says what works.
// CI runs this file on Node 20 (Debian 12: the 20.30.0 build) and on Node 22 and 24 in a Debian 13
// root (the 20.57.0 build), so the listen/close shim below is exercised on both builds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { BUILDS, WHAT_WORKS, glibcVersion, loadNative, loaded, uws, type TemplatedApp, type UwsBuild } from '../src/uws';

const BINARY = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
const ROOT = path.join(__dirname, '..', '..');

function installedDir(build: UwsBuild): string {
  return path.join(ROOT, 'node_modules', build.dependency);
}

/** Whether a build's binary loads in a fresh process (a failed dlopen cannot be retried in this one). */
function loadsHere(build: UwsBuild): boolean {
  const binary = path.join(installedDir(build), build.binaries, BINARY);
  return spawnSync(process.execPath, ['-e', `require(${JSON.stringify(binary)})`]).status === 0;
}

test('the loaded module is a native binary, not a JS fallback', () => {
  const binary = path.join(installedDir(loaded.build), loaded.build.binaries, BINARY);
  assert.equal(require.cache[binary]?.exports, uws);
  for (const build of BUILDS) {
    const dir = installedDir(build);
    const jsFiles = Object.keys(require.cache).filter((file) => file.startsWith(dir) && !file.endsWith('.node'));
    assert.deepEqual(jsFiles, [], `${build.dependency}: no JavaScript of the package is loaded`);
  }
  assert.equal(loaded.description, `uWebSockets.js ${loaded.build.version} (native, ${process.platform}-${process.arch}, ABI ${process.versions.modules})`);
});

test('the newest build that loads on this Node and libc is the one chosen', () => {
  const first = BUILDS.find(loadsHere);
  assert.ok(first, 'some build loads here');
  assert.equal(loaded.build, first);
  // On Node 22 and later only 20.57.0 has binaries; on glibc 2.38+ it loads on Node 20 too.
  if (Number(process.versions.node.split('.')[0]) >= 22) assert.equal(loaded.build.version, '20.57.0');
  const [major, minor] = glibcVersion().replace('glibc ', '').split('.').map(Number);
  if (major === 2 && minor < 38) {
    // 20.57.0 is skipped here for its three C23 symbols; the reason says so in a few words.
    assert.throws(() => loadNative([BUILDS[0]], installedDir), /\(20\.57\.0: needs GLIBC_2\.38\)/);
  }
});

test('no build loads: one line with Node, ABI, platform, libc, each build\'s reason and what works', (t) => {
  // Copies of both packages as published, with only another platform's binaries (and 20.30.0's JS fallback).
  const copies = fs.mkdtempSync(path.join(os.tmpdir(), 'pws-uws-'));
  t.after(() => fs.rmSync(copies, { recursive: true, force: true }));
  const foreign: Record<string, string> = { '20.57.0': 'uws_win32_x64_137.node', '20.30.0': 'uws_win32_x64_115.node' };
  for (const build of BUILDS) {
    const from = installedDir(build);
    const to = path.join(copies, build.dependency);
    fs.mkdirSync(path.join(to, build.binaries), { recursive: true });
    fs.copyFileSync(path.join(from, 'package.json'), path.join(to, 'package.json'));
    if (fs.existsSync(path.join(from, 'dist'))) fs.cpSync(path.join(from, 'dist'), path.join(to, 'dist'), { recursive: true });
    fs.copyFileSync(path.join(from, build.binaries, foreign[build.version]), path.join(to, build.binaries, foreign[build.version]));
  }
  const missing: UwsBuild = { dependency: 'uws-not-installed', version: '99.0.0', binaries: '.' };
  assert.throws(
    () => loadNative([...BUILDS, missing], (build) => (build === missing ? undefined : path.join(copies, build.dependency))),
    (err: Error) => {
      assert.doesNotMatch(err.message, /\n/);
      assert.ok(err.message.includes(`Node.js ${process.version} (ABI ${process.versions.modules}), ${process.platform}-${process.arch}, ${glibcVersion()}`), err.message);
      assert.ok(err.message.includes(`20.57.0: no binary for ABI ${process.versions.modules}`), err.message);
      assert.ok(err.message.includes(`20.30.0: no binary for ABI ${process.versions.modules}`), err.message);
      assert.ok(err.message.includes('99.0.0: not installed'), err.message);
      assert.ok(err.message.includes('Refusing the slow pure-JS fallback'), err.message);
      assert.ok(err.message.endsWith(`Works: ${WHAT_WORKS}.`), err.message);
      return true;
    },
  );
});

test('pws-server start with no build that loads: that one line on stderr, exit code 1', (t) => {
  // The package as installed, but each uWS dependency holding only a Windows binary.
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'pws-nobuild-'));
  t.after(() => fs.rmSync(copy, { recursive: true, force: true }));
  fs.cpSync(path.join(ROOT, 'bin'), path.join(copy, 'bin'), { recursive: true });
  fs.cpSync(path.join(ROOT, 'dist', 'src'), path.join(copy, 'dist', 'src'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(copy, 'package.json'));
  for (const build of BUILDS) {
    const from = installedDir(build);
    const to = path.join(copy, 'node_modules', build.dependency);
    fs.mkdirSync(path.join(to, build.binaries), { recursive: true });
    fs.copyFileSync(path.join(from, 'package.json'), path.join(to, 'package.json'));
    const windows = fs.readdirSync(path.join(from, build.binaries)).find((f) => f.startsWith('uws_win32_x64_'))!;
    fs.copyFileSync(path.join(from, build.binaries, windows), path.join(to, build.binaries, windows));
  }
  const run = spawnSync(process.execPath, [path.join(copy, 'bin', 'pws-server.js'), 'start'], { encoding: 'utf8', env: { PATH: process.env.PATH, PORT: '0' }, timeout: 30_000 });
  assert.equal(run.status, 1);
  assert.equal(run.stdout, '');
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  assert.ok(lines[0].startsWith(`pws-server: no native uWebSockets.js build loads on Node.js ${process.version} (ABI ${process.versions.modules}), ${process.platform}-${process.arch}, ${glibcVersion()}`), lines[0]);
  assert.ok(lines[0].endsWith(`Works: ${WHAT_WORKS}.`), lines[0]);
});

test('the glibc version comes from the process report', () => {
  const runtime = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime;
  assert.equal(glibcVersion(), runtime ? `glibc ${runtime}` : 'no glibc');
  if (process.platform === 'linux') assert.match(glibcVersion(), /^glibc \d+\.\d+$/);
});

// What server.ts relies on beyond the typings: listen with a host and LIBUS_LISTEN_EXCLUSIVE_PORT
// (a second listener on the port fails), us_listen_socket_close (frees the port) and App.close()
// (ends the connections still open).
test('this build: exclusive listen on a host, closing the listener frees the port, close() ends connections', async () => {
  assert.equal(typeof uws.LIBUS_LISTEN_EXCLUSIVE_PORT, 'number');
  const listen = (app: TemplatedApp, port: number) =>
    new Promise<import('../src/uws').us_listen_socket | false>((resolve) => app.listen('127.0.0.1', port, uws.LIBUS_LISTEN_EXCLUSIVE_PORT, resolve));
  const first = uws.App();
  first.get('/*', (res) => void res.end('first'));
  const listener = await listen(first, 0);
  assert.ok(listener);
  const port = uws.us_socket_local_port(listener as never);
  const second = uws.App();
  second.get('/*', (res) => void res.end('second'));
  assert.equal(await listen(second, port), false, 'the port is held exclusively');

  uws.us_listen_socket_close(listener as never);
  const again = await listen(second, port);
  assert.ok(again, 'the port is free once the listener is closed');
  assert.equal(await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: 'close' } }).then((r) => r.text()), 'second');

  const client = net.connect(port, '127.0.0.1');
  await new Promise((resolve) => client.once('connect', resolve));
  const closed = new Promise((resolve) => client.once('close', resolve));
  client.resume();
  second.close();
  await closed;
  first.close();
});
