// Server start-up (src/server.ts): each port is bound exclusively, so a second server on a port in
// use refuses to start with a ListenError naming the option and the port, instead of sharing the
// port with the first and silently splitting its clients between the two.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { loadOptions } from '../src/options';
import { Log } from '../src/log';
import { ListenError } from '../src/protocol/errors';
import { Server } from '../src/server';
import { startServer } from './helpers/server';

function server(env: Record<string, string>): Server {
  const options = loadOptions({ HOST: '127.0.0.1', PORT: '0', SHUTDOWN_GRACE_PERIOD: '0', ...env });
  return new Server(options, new Log(false, true));
}

async function freePort(): Promise<number> {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as { port: number };
  probe.close();
  await once(probe, 'close');
  return port;
}

/** Asserts that starting rejects with the ListenError for `option` on `port`. */
async function refusesToStart(second: Server, option: string, port: number): Promise<void> {
  await assert.rejects(second.start(), (err: unknown) => {
    assert.ok(err instanceof ListenError, `expected a ListenError, got ${err}`);
    assert.equal(err.message, `${option}: cannot listen on 127.0.0.1:${port} (in use, or not permitted)`);
    return true;
  });
}

test('a second server on the PORT of a running one refuses to start', async (t) => {
  const first = await startServer();
  t.after(() => first.stop());
  const second = server({ PORT: String(first.port) });
  t.after(() => second.stop());
  await refusesToStart(second, 'PORT', first.port);
  assert.equal((await fetch(first.url('/'))).status, 200);
});

test('a second server on the METRICS_SERVER_PORT of a running one refuses to start, and lets go of its PORT', async (t) => {
  const first = await startServer({ METRICS_ENABLED: '1', METRICS_SERVER_PORT: String(await freePort()) });
  t.after(() => first.stop());
  const metricsPort = first.server.metricsPort;
  const second = server({ METRICS_ENABLED: '1', METRICS_SERVER_PORT: String(metricsPort) });
  t.after(() => second.stop());
  await refusesToStart(second, 'METRICS_SERVER_PORT', metricsPort);
  assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status, 200);
  // The PORT the refused server had bound before failing is free again.
  assert.notEqual(second.port, 0);
  const third = server({ PORT: String(second.port) });
  await third.start();
  await third.stop();
});
