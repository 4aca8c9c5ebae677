// Apps from the config file cost nothing of the SQL stores: neither database client is loaded,
// and `pws-server apps` says what it can do there.
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BIN, ROOT } from '../helpers/nodes';

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { env: { PATH: process.env.PATH ?? '', ...env }, cwd: ROOT }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}

test('a server with the config file apps loads neither pg nor mysql2', async () => {
  const script = `
    const { Server } = require('./dist/src/server');
    const { loadOptions } = require('./dist/src/options');
    const { Log } = require('./dist/src/log');
    const server = new Server(loadOptions({ HOST: '127.0.0.1', PORT: '0', SHUTDOWN_GRACE_PERIOD: '0', METRICS_ENABLED: '1' }), new Log(false, true));
    server.start().then(async () => {
      const loaded = Object.keys(require.cache).filter((p) => /node_modules[\\\\/](pg|mysql2)[\\\\/]/.test(p));
      await server.stop();
      console.log(JSON.stringify(loaded));
    });`;
  const { code, stdout, stderr } = await run(['-e', script]);
  assert.equal(code, 0, stderr);
  assert.deepEqual(JSON.parse(stdout.trim().split('\n').pop()!), []);
});

test('pws-server apps: help, the config file apps listed, changes refused with a reason', async () => {
  const help = await run([BIN, 'apps', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /rotate-secret <id>/);
  const list = await run([BIN, 'apps', 'list'], { DEFAULT_APP_ID: 'one', DEFAULT_APP_KEY: 'one-key' });
  assert.equal(list.stdout, 'one\tone-key\tenabled\n');
  const add = await run([BIN, 'apps', 'add']);
  assert.equal(add.code, 1);
  assert.match(add.stderr, /^pws-server: apps: APP_MANAGER_DRIVER is config: the apps come from the config file/);
  const bad = await run([BIN, 'apps', 'list'], { APP_MANAGER_DRIVER: 'oracle' });
  assert.match(bad.stderr, /APP_MANAGER_DRIVER: unknown app manager driver "oracle" \(valid: config, postgres, mysql\)/);
  const unknown = await run([BIN, 'apps', 'frobnicate'], { APP_MANAGER_DRIVER: 'postgres', DB_POSTGRES_PORT: '1' });
  assert.match(unknown.stderr, /apps: unknown command "frobnicate"/);
});
