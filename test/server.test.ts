// Server start-up (src/server.ts): each port is bound exclusively, so a second server on a port in
// use refuses to start with a ListenError naming the option and the port, instead of sharing the
// port with the first and silently splitting its clients between the two. TLS files that options
// validation accepts are files uWS can serve.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { get } from 'node:https';
import { createServer } from 'node:net';
import { loadOptions } from '../src/options';
import { Log } from '../src/log';
import { ListenError } from '../src/protocol/errors';
import { Server } from '../src/server';
import { RawSocket, startServer } from './helpers/server';
import { TLS } from './helpers/tls';

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

test('the certificate and encrypted key that options validation accepts serve https and wss', async (t) => {
  const s = await startServer({ SSL_CERT: TLS.cert, SSL_KEY: TLS.encryptedKey, SSL_PASS: TLS.pass });
  t.after(() => s.stop());
  const ca = readFileSync(TLS.cert);
  const res = await new Promise<{ status?: number; body: string }>((resolve, reject) => {
    get(`https://127.0.0.1:${s.port}/`, { ca }, (r) => {
      let body = '';
      r.on('data', (d) => (body += d));
      r.on('end', () => resolve({ status: r.statusCode, body }));
    }).on('error', reject);
  });
  assert.deepEqual(res, { status: 200, body: 'OK' });
  const ws = await RawSocket.connect(`wss://127.0.0.1:${s.port}/app/app-key?protocol=7`, { ca });
  t.after(() => ws.close());
  assert.match(await ws.socketId(), /^\d+\.\d+$/);
});
