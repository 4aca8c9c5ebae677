// Health endpoints for load balancers and orchestrators (src/health.ts): /, /ready,
// /accept-traffic, /usage, and the memory threshold that also refuses new WebSocket connections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { totalmem } from 'node:os';
import { startServer, type TestServer } from '../helpers/server';

async function get(s: TestServer, path: string): Promise<{ status: number; contentType: string | null; text: string }> {
  const res = await fetch(s.url(path));
  return { status: res.status, contentType: res.headers.get('content-type'), text: await res.text() };
}

/** A threshold this process is surely above: half of the share of memory it holds right now. */
function thresholdBelowThisProcess(): string {
  const percent = (process.memoryUsage.rss() / totalmem()) * 100;
  const half = (percent / 2).toFixed(6);
  assert.ok(Number(half) > 0, `this process holds too little memory (${percent}%) to test the threshold`);
  return half;
}

test('GET / answers 200 "OK" as text/plain', async () => {
  const s = await startServer();
  try {
    assert.deepEqual(await get(s, '/'), { status: 200, contentType: 'text/plain', text: 'OK' });
  } finally {
    await s.stop();
  }
});

test('GET /ready and GET /accept-traffic answer 200 "OK" while running under the default threshold', async () => {
  const s = await startServer();
  try {
    assert.equal(s.options.acceptTrafficMemoryThreshold, 85);
    assert.deepEqual(await get(s, '/ready'), { status: 200, contentType: 'text/plain', text: 'OK' });
    assert.deepEqual(await get(s, '/accept-traffic'), { status: 200, contentType: 'text/plain', text: 'OK' });
  } finally {
    await s.stop();
  }
});

test('GET /accept-traffic answers 503 when this process holds more memory than HTTP_ACCEPT_TRAFFIC_MEMORY_THRESHOLD', async () => {
  const s = await startServer({ HTTP_ACCEPT_TRAFFIC_MEMORY_THRESHOLD: thresholdBelowThisProcess() });
  try {
    assert.deepEqual(await get(s, '/accept-traffic'), { status: 503, contentType: 'text/plain', text: 'Over the memory threshold' });
    // /ready is about shutdown only: a node over the threshold is still up.
    assert.deepEqual(await get(s, '/ready'), { status: 200, contentType: 'text/plain', text: 'OK' });
  } finally {
    await s.stop();
  }
});

test('above the memory threshold a new WebSocket connection is refused with pusher:error 4100 and close code 4100', async () => {
  const s = await startServer({ HTTP_ACCEPT_TRAFFIC_MEMORY_THRESHOLD: thresholdBelowThisProcess() });
  try {
    const raw = await s.raw();
    const message = 'Over capacity: the server is above its memory threshold';
    assert.deepEqual(await raw.closed, { code: 4100, reason: message });
    assert.deepEqual(raw.frames, [{ event: 'pusher:error', data: { code: 4100, message } }]);
    assert.equal(s.server.apps.findById('app-id')!.sockets.size, 0);
  } finally {
    await s.stop();
  }
});

test('GET /usage reports this process memory as JSON; rss matches process.memoryUsage().rss', async () => {
  const s = await startServer();
  try {
    const before = process.memoryUsage().rss;
    const res = await fetch(s.url('/usage'));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    const { memory } = (await res.json()) as { memory: Record<string, number> };
    const after = process.memoryUsage().rss;
    assert.deepEqual(Object.keys(memory).sort(), ['arrayBuffers', 'external', 'heapTotal', 'heapUsed', 'percent', 'rss', 'systemTotal']);
    assert.equal(memory.systemTotal, totalmem());
    assert.equal(memory.percent, (memory.rss / memory.systemTotal) * 100);
    // Same process, sampled between two readings of ours: within them, up to what a collection or
    // a coverage flush (under c8) moves meanwhile.
    const low = Math.min(before, after) * 0.8;
    const high = Math.max(before, after) * 1.2;
    assert.ok(memory.rss >= low && memory.rss <= high, `usage rss ${memory.rss} outside ${before}…${after} ±20%`);
    assert.ok(memory.heapUsed > 0 && memory.heapUsed <= memory.heapTotal, JSON.stringify(memory));
  } finally {
    await s.stop();
  }
});

test('a health path asked with another method than GET answers 405 with a JSON error', async () => {
  const s = await startServer();
  try {
    for (const path of ['/', '/ready', '/accept-traffic', '/usage']) {
      const res = await fetch(s.url(path), { method: 'POST' });
      assert.deepEqual([res.status, res.headers.get('content-type'), await res.json()], [405, 'application/json', { error: 'Method not allowed: use GET' }], path);
    }
  } finally {
    await s.stop();
  }
});

test(
  'GET /ready and GET /accept-traffic answer 503 once shutdown has begun, while sockets drain',
  async () => {
    const s = await startServer({ SHUTDOWN_GRACE_PERIOD: '5000' });
    try {
      await (await s.raw()).socketId();
      const stopping = s.server.stop();
      assert.equal(s.server.isClosing, true);
      assert.deepEqual(await get(s, '/ready'), { status: 503, contentType: 'text/plain', text: 'Shutting down' });
      assert.deepEqual(await get(s, '/accept-traffic'), { status: 503, contentType: 'text/plain', text: 'Shutting down' });
      await stopping;
    } finally {
      await s.stop();
    }
  },
);

test('HEAD on a health path answers the GET status with no body', async () => {
  const s = await startServer({ SHUTDOWN_GRACE_PERIOD: '500' });
  try {
    for (const path of ['/', '/ready', '/accept-traffic', '/usage']) {
      const res = await fetch(s.url(path), { method: 'HEAD' });
      assert.deepEqual([res.status, await res.text()], [200, ''], path);
    }
    const stopping = s.server.stop();
    const res = await fetch(s.url('/ready'), { method: 'HEAD' });
    assert.equal(res.status, 503);
    await stopping;
  } finally {
    await s.stop();
  }
});
