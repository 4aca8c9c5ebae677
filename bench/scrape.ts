// Scrape: /metrics with 1,000 apps configured and active. pws-server starts from a generated
// config file, every app gets a subscribed socket and an API event (so its series are non-zero),
// then GET /metrics is timed round trip, plain and gzipped; then again with 19,000 sockets open,
// since a scrape must cost the same whatever the socket count (open files were once counted by
// listing /proc/self/fd). The render budget is timed in this process on a PwsMetrics holding the
// same 1,000 apps.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Pusher from 'pusher';
import { PwsMetrics } from '../src/metrics/pws-metrics';
import { CLK_TCK, cpuTicks, hardOpenFileLimit, median, pwsServerSpec, quantile, startClient, startServer } from './proc';
import type { BenchOptions, Budget, PartResult } from './run';

const RENDER_LIMIT_MS = 5;
// The server's CPU per scrape with many sockets open, and against the same with one per app.
const MANY_SOCKETS_LIMIT_MS = 5;
const MANY_SOCKETS_RATIO = 1.25;
// Files a process holds besides its sockets (node, uWS, stdio), kept free under the limit.
const SPARE_FDS = 200;
const RENDERS = 200;
const CHANNEL = 'bench';
// API calls in flight at once while the apps are made active.
const CONCURRENCY = 16;

const app = (i: number) => ({ id: `app-${i}`, key: `key-${i}`, secret: `secret-${i}` });

/** Round-trip times of one kind of scrape. */
export interface ScrapeTimes {
  requests: number;
  bodyBytes: number;
  medianMs: number;
  p99Ms: number;
  /** The server's own CPU (utime + stime) per scrape, averaged over the timed requests. */
  serverCpuMs: number;
}

/** Everything the part measured, as saved to JSON. */
export interface ScrapeResult {
  apps: number;
  samples: number;
  plain: ScrapeTimes;
  gzip: ScrapeTimes;
  render: { renders: number; bodyBytes: number; medianMs: number; p99Ms: number };
  /** The plain scrape again with `sockets` open, and the open files the server reported then. */
  manySockets: { sockets: number; openFds: number; plain: ScrapeTimes };
}

function get(agent: Agent, port: number, gzip: boolean): Promise<{ ms: number; bytes: number; body: string }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const req = request({ host: '127.0.0.1', port, path: '/metrics', agent, headers: gzip ? { 'Accept-Encoding': 'gzip' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`GET /metrics answered ${res.statusCode}`));
        const body = Buffer.concat(chunks);
        resolve({ ms: performance.now() - start, bytes: body.length, body: gzip ? '' : body.toString() });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export async function timeScrapes(pid: number, port: number, n: number, gzip: boolean): Promise<ScrapeTimes & { body: string }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < 10; i++) await get(agent, port, gzip);
    const times: number[] = [];
    let last = { ms: 0, bytes: 0, body: '' };
    const before = cpuTicks(pid);
    for (let i = 0; i < n; i++) {
      last = await get(agent, port, gzip);
      times.push(last.ms);
    }
    const serverCpuMs = ((cpuTicks(pid) - before) / CLK_TCK / n) * 1000;
    return { requests: n, bodyBytes: last.bytes, medianMs: median(times), p99Ms: quantile(times, 0.99), serverCpuMs, body: last.body };
  } finally {
    agent.destroy();
  }
}

// The render budget, timed here: the server's families with `apps` apps, every series non-zero.
function timeRender(apps: number): ScrapeResult['render'] {
  const metrics = new PwsMetrics({ prefix: 'pws_', port: 6001 });
  try {
    const families = [
      metrics.newConnections,
      metrics.newDisconnections,
      metrics.socketReceivedBytes,
      metrics.socketTransmittedBytes,
      metrics.httpReceivedBytes,
      metrics.httpTransmittedBytes,
      metrics.httpCallsReceived,
      metrics.wsMessagesReceived,
      metrics.wsMessagesSent,
    ];
    for (let i = 0; i < apps; i++) {
      const slot = metrics.appSlot(app(i).id);
      metrics.connected.add(slot, 1 + (i % 7));
      families.forEach((family, f) => family.add(slot, 1000 * i + f));
    }
    let bodyBytes = 0;
    for (let i = 0; i < 20; i++) bodyBytes = Buffer.from(metrics.render()).length;
    // Up to the bytes the answer sends: render() may return a rope that only writing flattens.
    const times: number[] = [];
    for (let i = 0; i < RENDERS; i++) {
      const start = performance.now();
      Buffer.from(metrics.render());
      times.push(performance.now() - start);
    }
    return { renders: RENDERS, bodyBytes, medianMs: median(times), p99Ms: quantile(times, 0.99) };
  } finally {
    metrics.stop();
  }
}

/** Starts pws-server with `options.apps` apps, makes each active, and times its scrapes and the render. */
export async function run(options: BenchOptions): Promise<PartResult<ScrapeResult>> {
  const apps = options.apps;
  const dir = mkdtempSync(join(tmpdir(), 'pws-bench-'));
  const config = join(dir, 'apps.json');
  writeFileSync(config, JSON.stringify({ apps: Array.from({ length: apps }, (_, i) => app(i)) }));
  // As many sockets as asked, within both processes' open-file limits.
  const sockets = Math.max(apps, Math.min(options.scrapeSockets, hardOpenFileLimit() - SPARE_FDS));
  const fds = sockets + SPARE_FDS;
  const nodeFlags = options.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', join(options.profileDir, 'scrape')] : [];
  const spec = pwsServerSpec('pws-server, metrics on', { METRICS_ENABLED: 'true', ACTIVITY_TIMEOUT: '3600', SHUTDOWN_GRACE_PERIOD: '200' }, config, options.pwsBin);
  const server = await startServer({ ...spec, fds, nodeFlags });
  const client = startClient(fds);
  try {
    const urls = Array.from({ length: apps }, (_, i) => `ws://127.0.0.1:${server.port}/app/${app(i).key}?protocol=7&client=bench&version=1`);
    await client.open(urls, apps, CHANNEL);
    client.expect(apps);
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < apps) {
        const a = app(next++);
        const pusher = new Pusher({ appId: a.id, key: a.key, secret: a.secret, host: '127.0.0.1', port: String(server.port), useTLS: false, agent });
        const response = await pusher.trigger(CHANNEL, 'bench-event', JSON.stringify({ app: a.id }));
        await response.arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    agent.destroy();
    await client.delivered(options.timeoutMs);
    await client.verify();
    options.log(`scrape: ${apps} apps with one socket and one event each`);

    const plain = await timeScrapes(server.pid, server.port, options.scrapes, false);
    const gzip = await timeScrapes(server.pid, server.port, options.scrapes, true);
    const samples = plain.body.split('\n').filter((line) => line !== '' && !line.startsWith('#')).length;
    const zeroSent = plain.body.split('\n').filter((line) => line.startsWith('pws_') && line.includes('ws_messages_sent_total{') && line.endsWith(' 0')).length;
    if (zeroSent > 0) throw new Error(`${zeroSent} apps show no message sent: the apps were not all active`);
    const render = timeRender(apps);

    // The same scrape with many more sockets open (idle, spread over the apps).
    await client.open(urls, sockets - apps, null);
    options.log(`scrape: ${sockets} sockets open`);
    const many = await timeScrapes(server.pid, server.port, options.scrapes, false);
    const openFds = Number(/^pws_process_open_fds (\d+)$/m.exec(many.body)?.[1] ?? NaN);
    if (!(openFds >= sockets)) throw new Error(`the server reports ${openFds} open files with ${sockets} sockets open`);
    for (const times of [plain, gzip, many]) delete (times as Partial<typeof times>).body;
    const result: ScrapeResult = { apps, samples, plain, gzip, render, manySockets: { sockets, openFds, plain: many } };
    const ratio = many.serverCpuMs / plain.serverCpuMs;

    const table = [
      ['measure', 'body', 'median ms', 'p99 ms', 'server CPU ms each'],
      [`GET /metrics round trip, ${apps} apps`, `${(plain.bodyBytes / 1024).toFixed(0)} KB`, plain.medianMs.toFixed(2), plain.p99Ms.toFixed(2), plain.serverCpuMs.toFixed(2)],
      ['GET /metrics round trip, Accept-Encoding: gzip', `${(gzip.bodyBytes / 1024).toFixed(0)} KB`, gzip.medianMs.toFixed(2), gzip.p99Ms.toFixed(2), gzip.serverCpuMs.toFixed(2)],
      [`GET /metrics round trip, ${sockets} sockets open`, `${(many.bodyBytes / 1024).toFixed(0)} KB`, many.medianMs.toFixed(2), many.p99Ms.toFixed(2), many.serverCpuMs.toFixed(2)],
      [`PwsMetrics.render() to bytes, ${apps} apps, in process`, `${(render.bodyBytes / 1024).toFixed(0)} KB`, render.medianMs.toFixed(2), render.p99Ms.toFixed(2), ''],
    ];
    const budgets: Budget[] = [
      { what: `/metrics render with ${apps} apps (median)`, value: render.medianMs, limit: RENDER_LIMIT_MS, unit: 'ms', pass: render.medianMs < RENDER_LIMIT_MS },
      { what: `server CPU per scrape with ${sockets} sockets open`, value: many.serverCpuMs, limit: MANY_SOCKETS_LIMIT_MS, unit: 'ms', pass: many.serverCpuMs < MANY_SOCKETS_LIMIT_MS },
      { what: `server CPU per scrape, ${sockets} sockets against ${apps}`, value: ratio, limit: MANY_SOCKETS_RATIO, unit: 'x', pass: ratio <= MANY_SOCKETS_RATIO },
    ];
    const notes = [
      `${samples} samples per scrape; ${options.scrapes} sequential scrapes per kind over one kept-alive connection`,
      `with ${sockets} sockets open the server reported ${openFds} open files`,
      'round trips include this process reading the answer; the budget is on rendering alone',
    ];
    return { part: 'scrape', title: `Scrape with ${apps} apps`, table, budgets, notes, figures: result };
  } finally {
    await client.stop();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
