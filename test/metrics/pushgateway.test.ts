// METRICS_DRIVER=pushgateway against the real Debian `prometheus-pushgateway`: a real
// in-process server with real pusher-js clients pushes its /metrics body to the gateway's
// group for its job and instance; every count is read back from the gateway's own /metrics.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { hostname } from 'node:os';
import * as path from 'node:path';
import Pusher from 'pusher';
import PusherJs from 'pusher-js';
import { Log } from '../../src/log';
import { GZIP_MIN_BYTES } from '../../src/metrics/format';
import { groupingPath, PushgatewayDriver } from '../../src/metrics/pushgateway';
import { PwsMetrics } from '../../src/metrics/pws-metrics';
import { loadOptions } from '../../src/options';
import { Server } from '../../src/server';
import { APP, connected, eventually, nextEvent, startServer, subscribed } from '../helpers/server';
import { findTool, freePort, missingToolSkip, requireTool, startPushgateway, type PushgatewayInstance } from '../helpers/services';

const skip = missingToolSkip('prometheus-pushgateway', 'prometheus-pushgateway');
const WAIT_MS = 15000;

// ------------------------------------------------------------------------ reading exposition text

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function unescapeLabel(v: string): string {
  return v.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** Every sample line of an exposition body. */
function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparsable sample line ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = unescapeLabel(pair[2]);
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/** The values of the series `name` with exactly these labels (normally zero or one). */
function values(text: string, name: string, labels: Record<string, string>): number[] {
  return samples(text)
    .filter((s) => s.name === name && sameLabels(s.labels, labels))
    .map((s) => s.value);
}

/** The single value of that series, or undefined when absent. */
function value(text: string, name: string, labels: Record<string, string>): number | undefined {
  const found = values(text, name, labels);
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} appears ${found.length} times`);
  return found[0];
}

async function serverMetrics(srv: { url(path: string): string }): Promise<string> {
  const res = await fetch(srv.url('/metrics'));
  assert.equal(res.status, 200);
  return res.text();
}

/** Polls the gateway until `check(text)` holds; returns that text. */
async function gatewayUntil(gw: { metricsText(): Promise<string> }, check: (text: string) => boolean, what: string): Promise<string> {
  let text = '';
  await eventually(async () => check((text = await gw.metricsText())), WAIT_MS, what);
  return text;
}

function pushgatewayEnv(gatewayUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    METRICS_ENABLED: '1',
    METRICS_DRIVER: 'pushgateway',
    METRICS_PUSHGATEWAY_URL: gatewayUrl,
    METRICS_PUSHGATEWAY_INTERVAL: '200',
    ...extra,
  };
}

// ------------------------------------------------------------------------ a gateway on a chosen port

/** The real gateway binary on `port` (the shared helper picks its own port), for outages. */
async function gatewayOnPort(port: number): Promise<PushgatewayInstance & { child: ChildProcess }> {
  const bin = findTool('prometheus-pushgateway');
  assert.ok(bin);
  const child = spawn(bin, [`--web.listen-address=127.0.0.1:${port}`, '--persistence.file='], { stdio: 'ignore' });
  const exited = once(child, 'exit');
  const url = `http://127.0.0.1:${port}`;
  const get = async (p: string) => {
    const res = await fetch(url + p, { signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: await res.text() };
  };
  await eventually(
    async () => {
      if (child.exitCode !== null) throw new Error(`prometheus-pushgateway on ${port} exited with ${child.exitCode}`);
      return get('/-/ready').then((r) => r.status === 200, () => false);
    },
    WAIT_MS,
    `prometheus-pushgateway ready on ${port}`,
  );
  return {
    child,
    url,
    port,
    log: () => '',
    async metricsText() {
      const r = await get('/metrics');
      assert.equal(r.status, 200);
      return r.body;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL'); // also ends a SIGSTOPped gateway
      await exited;
    },
  };
}

/** A Log that keeps warnings and info lines instead of printing them. */
class RecordingLog extends Log {
  readonly lines: string[] = [];
  constructor() {
    super(false, true);
  }
  info(message: string): void {
    this.lines.push(`info ${message}`);
  }
  warn(message: string): void {
    this.lines.push(`warn ${message}`);
  }
  error(message: string): void {
    this.lines.push(`error ${message}`);
  }
  matching(re: RegExp): string[] {
    return this.lines.filter((l) => re.test(l));
  }
}

/** A server built here rather than by startServer, so its Log can be a RecordingLog from the first push on. */
async function startRecordedServer(env: Record<string, string>): Promise<{ server: Server; log: RecordingLog; url(p: string): string; client(): PusherJs; sdk: Pusher; stop(): Promise<void> }> {
  const log = new RecordingLog();
  const server = new Server(loadOptions({ HOST: '127.0.0.1', PORT: '0', ...env }), log);
  await server.start();
  const port = server.port;
  const clients: PusherJs[] = [];
  return {
    server,
    log,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    sdk: new Pusher({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: String(port), useTLS: false }),
    client() {
      const c = new PusherJs(APP.key, { cluster: 'local', wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'], disableStats: true });
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) c.disconnect();
      await server.stop();
    },
  };
}

async function failuresOnServer(srv: { url(p: string): string }): Promise<number> {
  return value(await serverMetrics(srv), 'pws_pushgateway_push_failures_total', {}) ?? NaN;
}

/**
 * Cleanups run last-registered first (t.after runs its hooks in registration order), so a
 * server stops, with its last push, before the gateway it pushes to.
 */
function cleanups(t: TestContext): (fn: () => unknown) => void {
  const fns: Array<() => unknown> = [];
  t.after(async () => {
    for (const fn of fns.reverse()) await fn();
  });
  return (fn) => void fns.push(fn);
}

// ------------------------------------------------------------------------ the grouping path

test('groupingPath: plain values percent-encoded, `/`, empty and dot segments as @base64', () => {
  const cases: Array<[string, string, string]> = [
    ['pws', 'node-1:6001', '/metrics/job/pws/instance/node-1:6001'],
    ['pws', '', '/metrics/job/pws/instance@base64/='],
    ['directory_cleaner', '/var/tmp', '/metrics/job/directory_cleaner/instance@base64/L3Zhci90bXA'],
    ['a/b', 'x', '/metrics/job@base64/YS9i/instance/x'],
    ['.', '..', '/metrics/job@base64/Lg/instance@base64/Li4'],
    ['x y', '50%', '/metrics/job/x%20y/instance/50%25'],
    ['ü', '?#&=+', '/metrics/job/%C3%BC/instance/%3F%23%26%3D%2B'],
    ['%2F', 'host@base64', '/metrics/job/%252F/instance/host%40base64'],
    // URL-safe alphabet: `-` and `_` where standard base64 has `+` and `/`.
    ['pws', '/>?', '/metrics/job/pws/instance@base64/Lz4_'],
    ['pws', '/~~', '/metrics/job/pws/instance@base64/L35-'],
  ];
  for (const [job, instance, expected] of cases) assert.equal(groupingPath(job, instance), expected, `${job} ${instance}`);
});

test('the real gateway decodes every groupingPath back to the exact job and instance', { skip }, async (t) => {
  const defer = cleanups(t);
  const gw = await startPushgateway();
  defer(() => gw.stop());
  const pairs: Array<[string, string]> = [
    ['pws', 'node-1:6001'],
    ['pws', ''],
    ['a/b c', '/var/tmp'],
    ['.', '..'],
    ['50%', '?#&=+;@!'],
    ['ü', 'x y'],
    ['%2F', '%'],
    ['pws', '/>?'],
  ];
  for (const [job, instance] of pairs) {
    const res = await fetch(gw.url + groupingPath(job, instance), { method: 'PUT', body: 'probe 1\n' });
    assert.equal(res.status, 200, `${job} ${instance}: ${await res.text()}`);
  }
  const text = await gw.metricsText();
  for (const [job, instance] of pairs) {
    assert.equal(value(text, 'probe', { job, instance }), 1, `probe{job=${JSON.stringify(job)},instance=${JSON.stringify(instance)}}`);
  }
  assert.equal(samples(text).filter((s) => s.name === 'probe').length, pairs.length);
});

// ------------------------------------------------------------------------ start-up errors

test('an empty job, a bad URL or a too short interval stop start-up with a clear one-line error', () => {
  const bin = path.resolve(__dirname, '../../../bin/pws-server.js');
  const base = { ...process.env, PORT: '0', HOST: '127.0.0.1', METRICS_ENABLED: '1', METRICS_DRIVER: 'pushgateway' };
  const cases: Array<[Record<string, string>, string]> = [
    [{ METRICS_PUSHGATEWAY_JOB: ' ' }, 'pws-server: METRICS_PUSHGATEWAY_JOB: must not be empty (the Pushgateway needs a job name)\n'],
    [{ METRICS_PUSHGATEWAY_URL: 'ftp://gateway:9091' }, 'pws-server: METRICS_PUSHGATEWAY_URL: must be an http:// or https:// URL, got "ftp://gateway:9091"\n'],
    [{ METRICS_PUSHGATEWAY_INTERVAL: '50' }, 'pws-server: METRICS_PUSHGATEWAY_INTERVAL: must be at least 100, got 50\n'],
    [{ METRICS_PUSHGATEWAY_DELETE_ON_SHUTDOWN: 'maybe' }, 'pws-server: METRICS_PUSHGATEWAY_DELETE_ON_SHUTDOWN: expected true, false, 1 or 0, got "maybe"\n'],
  ];
  for (const [env, stderr] of cases) {
    const r = spawnSync(process.execPath, [bin, 'start'], { env: { ...base, ...env }, encoding: 'utf8', timeout: 20000 });
    assert.equal(r.stderr, stderr, JSON.stringify(env));
    assert.equal(r.status, 1, JSON.stringify(env));
  }
});

test('the driver registers its four families at 0, label-less, in the /metrics registry', (t) => {
  const metrics = new PwsMetrics({ prefix: 'pws_', port: 6001 });
  t.after(() => metrics.stop());
  const driver = new PushgatewayDriver(
    metrics,
    { pushgatewayUrl: 'http://127.0.0.1:9', pushgatewayIntervalMs: 15000, pushgatewayJob: 'pws', pushgatewayInstance: 'h:6001', pushgatewayDeleteOnShutdown: false },
    new RecordingLog(),
  );
  assert.equal(driver.target, 'http://127.0.0.1:9/metrics/job/pws/instance/h:6001');
  assert.equal(driver.timeoutMs, 10000);
  const body = metrics.render();
  const own = body.slice(body.indexOf('# HELP pws_pushgateway_'));
  const buckets = ['0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf'];
  assert.equal(
    own,
    '# HELP pws_pushgateway_push_failures_total Pushes to the Pushgateway that failed: gateway unreachable, non-2xx answer or timeout.\n' +
      '# TYPE pws_pushgateway_push_failures_total counter\n' +
      'pws_pushgateway_push_failures_total 0\n' +
      '# HELP pws_pushgateway_pushes_total Pushes to the Pushgateway, and the delete at shutdown.\n' +
      '# TYPE pws_pushgateway_pushes_total counter\n' +
      'pws_pushgateway_pushes_total 0\n' +
      '# HELP pws_pushgateway_push_duration_seconds Seconds each push to the Pushgateway took, failed ones included.\n' +
      '# TYPE pws_pushgateway_push_duration_seconds histogram\n' +
      buckets.map((le) => `pws_pushgateway_push_duration_seconds_bucket{le="${le}"} 0\n`).join('') +
      'pws_pushgateway_push_duration_seconds_sum 0\n' +
      'pws_pushgateway_push_duration_seconds_count 0\n' +
      '# HELP pws_pushgateway_pushed_bytes_total Bytes of push bodies sent to the Pushgateway, gzipped when large.\n' +
      '# TYPE pws_pushgateway_pushed_bytes_total counter\n' +
      'pws_pushgateway_pushed_bytes_total 0\n',
  );
});

// ------------------------------------------------------------------------ pushing

test('pushes the /metrics body under job and instance: exact counts, same names, accepted whole', { skip }, async (t) => {
  const defer = cleanups(t);
  const gw = await startPushgateway();
  defer(() => gw.stop());
  const srv = await startServer(pushgatewayEnv(gw.url, { METRICS_PUSHGATEWAY_JOB: 'pws-test', METRICS_PUSHGATEWAY_INSTANCE: 'node-1:6001' }));
  defer(() => srv.stop());
  const group = { job: 'pws-test', instance: 'node-1:6001' };
  const app = { app_id: APP.id, ...group };

  const clients = [srv.client(), srv.client(), srv.client()];
  await Promise.all(clients.map(connected));
  let text = await gatewayUntil(gw, (x) => value(x, 'pws_0_connected', app) === 3, 'connected 3 in the gateway');
  assert.equal(value(text, 'pws_0_new_connections_total', app), 3);
  assert.equal(value(text, 'pws_0_new_disconnections_total', app), 0);

  clients[0].disconnect();
  text = await gatewayUntil(gw, (x) => value(x, 'pws_0_connected', app) === 2, 'connected 2 in the gateway');
  assert.equal(value(text, 'pws_0_new_connections_total', app), 3);
  assert.equal(value(text, 'pws_0_new_disconnections_total', app), 1);

  // Quiet now: after one more push, every server series of GET /metrics is in the gateway
  // with the same value plus the job and instance labels, and every HELP and TYPE line too.
  const pushedAt = value(text, 'push_time_seconds', group)!;
  text = await gatewayUntil(gw, (x) => value(x, 'push_time_seconds', group)! > pushedAt, 'one more push');
  const scrape = await serverMetrics(srv);
  const serverSeries = samples(scrape).filter((s) => s.name.startsWith('pws_0_') || s.name === 'pws_pushgateway_push_failures_total');
  assert.equal(serverSeries.length, 11);
  for (const s of serverSeries) assert.equal(value(text, s.name, { ...s.labels, ...group }), s.value, `${s.name} ${JSON.stringify(s.labels)}`);
  const gatewayLines = new Set(text.split('\n'));
  const headers = scrape.split('\n').filter((l) => l.startsWith('# HELP ') || l.startsWith('# TYPE '));
  assert.ok(headers.length > 60, `only ${headers.length} HELP/TYPE lines`);
  for (const line of headers) assert.ok(gatewayLines.has(line), `gateway lacks ${line}`);
  // Every process family made it, histogram included.
  assert.equal(value(text, 'pws_nodejs_gc_duration_seconds_bucket', { kind: 'major', le: '+Inf', ...group }), value(text, 'pws_nodejs_gc_duration_seconds_count', { kind: 'major', ...group }));
  assert.equal(value(text, 'pws_nodejs_active_handles_total', group)! > 0, true);

  // The gateway took every push whole: no failed store, no 400, no failure on our side.
  assert.equal(value(text, 'push_failure_time_seconds', group), 0);
  assert.equal(samples(text).filter((s) => s.name === 'pushgateway_http_requests_total' && s.labels.code !== '200').length, 0);
  assert.equal(value(text, 'pws_pushgateway_push_failures_total', group), 0);
  assert.equal(value(scrape, 'pws_pushgateway_push_failures_total', {}), 0);
});

test('a large body is pushed gzipped and a small one plain; every push counted and timed, its bytes added', { skip }, async (t) => {
  const defer = cleanups(t);
  const gw = await startPushgateway();
  defer(() => gw.stop());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pws-pushgateway-'));
  defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'apps.json');
  fs.writeFileSync(config, JSON.stringify({ apps: [APP, ...Array.from({ length: 199 }, (_, i) => ({ id: `app-${i + 1}`, key: `key-${i + 1}`, secret: `s-${i + 1}` }))] }));

  for (const [instance, configPath, gzipped] of [['node-large', config, true], ['node-small', undefined, false]] as const) {
    const srv = await startServer(pushgatewayEnv(gw.url, { METRICS_PUSHGATEWAY_INSTANCE: instance }), configPath);
    defer(() => srv.stop());
    const group = { job: 'pws', instance };
    const lastApp = gzipped ? 'app-199' : APP.id;
    const first = await gatewayUntil(gw, (x) => value(x, 'pws_0_connected', { app_id: lastApp, ...group }) === 0, `${instance} in the gateway`);
    await gatewayUntil(gw, (x) => value(x, 'push_time_seconds', group)! > value(first, 'push_time_seconds', group)!, `${instance}: one more push`);
    const text = await gw.metricsText();
    assert.equal(value(text, 'push_failure_time_seconds', group), 0, instance);

    const scrape = await serverMetrics(srv);
    const pushes = value(scrape, 'pws_pushgateway_pushes_total', {})!;
    assert.ok(pushes >= 2, `${instance}: ${pushes} pushes`);
    assert.equal(value(scrape, 'pws_pushgateway_push_duration_seconds_count', {}), pushes);
    assert.ok(value(scrape, 'pws_pushgateway_push_duration_seconds_sum', {})! > 0);
    assert.equal(value(scrape, 'pws_pushgateway_push_failures_total', {}), 0);
    const perPush = value(scrape, 'pws_pushgateway_pushed_bytes_total', {})! / pushes;
    const plain = Buffer.byteLength(scrape);
    t.diagnostic(`${instance}: ${plain} bytes rendered, ${Math.round(perPush)} bytes per push`);
    // One app's body is under the threshold on Node 20 and just over it on Node 24, whose V8 has
    // more heap spaces (a series each): the size decides, and the 200-app body is always over.
    if (gzipped) assert.ok(plain >= GZIP_MIN_BYTES, `${plain} bytes`);
    if (plain >= GZIP_MIN_BYTES) {
      assert.ok(perPush < plain / 5, `${perPush} bytes per push for a ${plain}-byte body`);
    } else {
      assert.ok(Math.abs(perPush - plain) < plain * 0.1, `${perPush} bytes per push for a ${plain}-byte body`);
    }
  }
});

test('each push replaces the whole group (PUT): counts never add up, foreign families vanish', { skip }, async (t) => {
  const defer = cleanups(t);
  const gw = await startPushgateway();
  defer(() => gw.stop());
  const srv = await startServer(pushgatewayEnv(gw.url, { METRICS_PUSHGATEWAY_INSTANCE: 'node-2' }));
  defer(() => srv.stop());
  const group = { job: 'pws', instance: 'node-2' };
  const app = { app_id: APP.id, ...group };

  const clients = [srv.client(), srv.client()];
  await Promise.all(clients.map(connected));
  let text = await gatewayUntil(gw, (x) => value(x, 'pws_0_new_connections_total', app) === 2, 'two connections in the gateway');

  // A family someone else added to the node's group with POST: the next PUT drops it.
  const added = await fetch(gw.url + groupingPath('pws', 'node-2'), { method: 'POST', body: 'stale_family 7\n' });
  assert.equal(added.status, 200);
  assert.equal(value(await gw.metricsText(), 'stale_family', group), 7);

  // Five more pushes later, the totals are what the node counted, not five times it.
  for (let i = 0; i < 5; i++) {
    const pushedAt = value(text, 'push_time_seconds', group)!;
    text = await gatewayUntil(gw, (x) => value(x, 'push_time_seconds', group)! > pushedAt, `push ${i + 1} more`);
  }
  assert.equal(value(text, 'stale_family', group), undefined);
  assert.deepEqual(values(text, 'pws_0_new_connections_total', app), [2]);
  assert.deepEqual(values(text, 'pws_0_connected', app), [2]);
  assert.equal(samples(text).filter((s) => s.name === 'pws_0_connected').length, 1);
  assert.equal(value(text, 'push_failure_time_seconds', group), 0);
});

test('instance defaults to <hostname>:<port>', { skip }, async (t) => {
  const defer = cleanups(t);
  const gw = await startPushgateway();
  defer(() => gw.stop());
  const srv = await startServer(pushgatewayEnv(gw.url));
  defer(() => srv.stop());
  const group = { job: 'pws', instance: `${hostname()}:0` };
  const text = await gatewayUntil(gw, (x) => value(x, 'push_time_seconds', group) !== undefined, 'the default group');
  assert.equal(value(text, 'pws_0_connected', { app_id: APP.id, ...group }), 0);
});

// ------------------------------------------------------------------------ shutdown

test('shutdown pushes a last time after the sockets closed: connected 0, disconnections = connections', { skip }, async (t) => {
  const defer = cleanups(t);
  const gw = await startPushgateway();
  defer(() => gw.stop());
  // A long interval: the only pushes are the one at start and the one at shutdown.
  const srv = await startServer(pushgatewayEnv(gw.url, { METRICS_PUSHGATEWAY_INTERVAL: '60000', METRICS_PUSHGATEWAY_INSTANCE: 'node-3' }));
  defer(() => srv.stop());
  const group = { job: 'pws', instance: 'node-3' };
  const app = { app_id: APP.id, ...group };
  await gatewayUntil(gw, (x) => value(x, 'push_time_seconds', group) !== undefined, 'the start push');

  const clients = [srv.client(), srv.client(), srv.client(), srv.client()];
  await Promise.all(clients.map(connected));
  await Promise.all(clients.map((c) => subscribed(c, 'news')));
  let text = await gw.metricsText();
  assert.equal(value(text, 'pws_0_new_connections_total', app), 0, 'no push between start and shutdown');

  // The server closes the four sockets itself (4200), then pushes.
  await srv.server.stop();
  text = await gw.metricsText();
  assert.equal(value(text, 'pws_0_connected', app), 0);
  assert.equal(value(text, 'pws_0_new_connections_total', app), 4);
  assert.equal(value(text, 'pws_0_new_disconnections_total', app), 4);
  assert.equal(value(text, 'pws_pushgateway_push_failures_total', group), 0);
  assert.equal(value(text, 'push_failure_time_seconds', group), 0);
});

test('METRICS_PUSHGATEWAY_DELETE_ON_SHUTDOWN deletes the group and only it', { skip }, async (t) => {
  const defer = cleanups(t);
  const gw = await startPushgateway();
  defer(() => gw.stop());
  const srv = await startServer(pushgatewayEnv(gw.url, { METRICS_PUSHGATEWAY_INSTANCE: 'node-4', METRICS_PUSHGATEWAY_DELETE_ON_SHUTDOWN: 'true' }));
  defer(() => srv.stop());
  const group = { job: 'pws', instance: 'node-4' };
  const sibling = { job: 'pws', instance: 'node-5' };
  const put = await fetch(gw.url + groupingPath('pws', 'node-5'), { method: 'PUT', body: 'pws_sibling 1\n' });
  assert.equal(put.status, 200);

  await connected(srv.client());
  await gatewayUntil(gw, (x) => value(x, 'pws_0_connected', { app_id: APP.id, ...group }) === 1, 'the node in the gateway');

  await srv.stop();
  // The gateway answers DELETE at once (202) and applies it in order, so poll.
  const text = await gatewayUntil(gw, (x) => value(x, 'push_time_seconds', group) === undefined, 'the group deleted');
  assert.deepEqual(samples(text).filter((s) => s.labels.instance === 'node-4'), []);
  assert.equal(value(text, 'pws_sibling', sibling), 1);
  assert.notEqual(value(text, 'push_time_seconds', sibling), undefined);
});

// ------------------------------------------------------------------------ outages

test('gateway down: clients unaffected, failures counted and logged once, then pushes land when it comes up', { skip }, async (t) => {
  const defer = cleanups(t);
  const port = await freePort();
  const srv = await startRecordedServer(pushgatewayEnv(`http://127.0.0.1:${port}`, { METRICS_PUSHGATEWAY_INSTANCE: 'node-6' }));
  defer(() => srv.stop());
  const group = { job: 'pws', instance: 'node-6' };

  const client = srv.client();
  await connected(client);
  await subscribed(client, 'news');
  let received = nextEvent(client, 'news', 'flash');
  await srv.sdk.trigger('news', 'flash', { n: 1 });
  assert.deepEqual(await received, { n: 1 });

  await eventually(async () => (await failuresOnServer(srv)) >= 3, WAIT_MS, 'three failed pushes');
  const warnings = srv.log.matching(/^warn /);
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0], new RegExp(`^warn metrics: push to http://127\\.0\\.0\\.1:${port}/metrics/job/pws/instance/node-6 failed: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}; retrying every 200 ms`));

  received = nextEvent(client, 'news', 'flash');
  await srv.sdk.trigger('news', 'flash', { n: 2 });
  assert.deepEqual(await received, { n: 2 });

  const gw = await gatewayOnPort(port);
  defer(() => gw.stop());
  const text = await gatewayUntil(gw, (x) => value(x, 'pws_0_connected', { app_id: APP.id, ...group }) === 1, 'the node in the gateway');
  await eventually(() => srv.log.matching(/work again/).length === 1, WAIT_MS, 'the recovery line');
  const [recovered] = srv.log.matching(/work again/);
  const failed = Number(/after (\d+) failed$/.exec(recovered)?.[1]);
  // The first push that landed carried every failure counted before it, and none came after.
  assert.ok(failed >= 3, recovered);
  assert.equal(value(text, 'pws_pushgateway_push_failures_total', group), failed);
  assert.equal(await failuresOnServer(srv), failed);
  // Failed pushes count as pushes; the body that landed was rendered before its own push was counted.
  assert.equal(value(text, 'pws_pushgateway_pushes_total', group), failed);
  assert.equal(value(text, 'pws_pushgateway_push_duration_seconds_count', group), failed);
  assert.equal(value(text, 'push_failure_time_seconds', group), 0);
  assert.equal(srv.log.matching(/^warn /).length, 1);
  assert.equal(client.connection.state, 'connected');
});

test('gateway hanging: pushes time out after min(interval, 10 s), counted once, recovered when it answers again', { skip }, async (t) => {
  const defer = cleanups(t);
  const port = await freePort();
  const gw = await gatewayOnPort(port);
  defer(() => gw.stop());
  const srv = await startRecordedServer(pushgatewayEnv(gw.url, { METRICS_PUSHGATEWAY_INTERVAL: '300', METRICS_PUSHGATEWAY_INSTANCE: 'node-7' }));
  defer(() => srv.stop());
  const group = { job: 'pws', instance: 'node-7' };
  await gatewayUntil(gw, (x) => value(x, 'push_time_seconds', group) !== undefined, 'the first push');

  // A stopped process: the kernel still accepts connections, nobody answers.
  gw.child.kill('SIGSTOP');
  await eventually(async () => (await failuresOnServer(srv)) >= 2, WAIT_MS, 'two timed-out pushes');
  const client = srv.client();
  await connected(client);
  const warnings = srv.log.matching(/^warn /);
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0], /failed: no answer within 300 ms; retrying every 300 ms/);

  gw.child.kill('SIGCONT');
  await eventually(() => srv.log.matching(/work again/).length === 1, WAIT_MS, 'the recovery line');
  const text = await gatewayUntil(gw, (x) => value(x, 'pws_0_connected', { app_id: APP.id, ...group }) === 1, 'the client in the gateway');
  assert.ok(value(text, 'pws_pushgateway_push_failures_total', group)! >= 2);
  assert.equal(srv.log.matching(/^warn /).length, 1);
});

test('a non-2xx answer is a failure: the gateway refusing an inconsistent push (400) is counted, quoted, then recovers', { skip }, async (t) => {
  const defer = cleanups(t);
  const gw = await startPushgateway();
  defer(() => gw.stop());
  // Another group already holds pws_0_connected as a counter: ours, a gauge, is inconsistent.
  const clash = await fetch(gw.url + groupingPath('other', 'x'), { method: 'PUT', body: '# TYPE pws_0_connected counter\npws_0_connected 1\n' });
  assert.equal(clash.status, 200);
  const srv = await startRecordedServer(pushgatewayEnv(gw.url, { METRICS_PUSHGATEWAY_INSTANCE: 'node-8' }));
  defer(() => srv.stop());
  const group = { job: 'pws', instance: 'node-8' };

  await eventually(async () => (await failuresOnServer(srv)) >= 2, WAIT_MS, 'two refused pushes');
  const warnings = srv.log.matching(/^warn /);
  assert.equal(warnings.length, 1, warnings.join('\n'));
  // Pushgateway 1.11.0 (Debian 13) answers nothing here: its logger panics on this error and the
  // connection closes. Earlier versions answer 400 with the reason, which the warning quotes.
  const expected = /version 1\.11\.0\b/.test(spawnSync(requireTool('prometheus-pushgateway', 'prometheus-pushgateway'), ['--version'], { encoding: 'utf8' }).stdout)
    ? /failed: other side closed/
    : /failed: HTTP 400: pushed metrics are invalid or inconsistent with existing metrics: .*pws_0_connected/;
  assert.match(warnings[0], expected);
  let text = await gw.metricsText();
  assert.ok(value(text, 'push_failure_time_seconds', group)! > 0);
  assert.equal(value(text, 'pws_0_connected', { app_id: APP.id, ...group }), undefined);

  const removed = await fetch(gw.url + groupingPath('other', 'x'), { method: 'DELETE' });
  assert.equal(removed.status, 202);
  text = await gatewayUntil(gw, (x) => value(x, 'pws_0_connected', { app_id: APP.id, ...group }) === 0, 'the node in the gateway');
  await eventually(() => srv.log.matching(/work again/).length === 1, WAIT_MS, 'the recovery line');
  assert.ok(value(text, 'push_time_seconds', group)! > value(text, 'push_failure_time_seconds', group)!);
  assert.equal(srv.log.matching(/^warn /).length, 1);
});

test('a gateway that is down at shutdown: stop() still completes and warns that the last push failed', { skip }, async (t) => {
  const defer = cleanups(t);
  const port = await freePort();
  const srv = await startRecordedServer(pushgatewayEnv(`http://127.0.0.1:${port}`, { METRICS_PUSHGATEWAY_INTERVAL: '60000' }));
  defer(() => srv.stop());
  await eventually(async () => (await failuresOnServer(srv)) === 1, WAIT_MS, 'the start push failing');
  await srv.stop();
  assert.equal(srv.log.matching(/^warn /).length, 2);
  assert.match(srv.log.matching(/^warn /)[1], /^warn metrics: last push to http:\/\/127\.0\.0\.1:\d+\/metrics\/job\/pws\/instance\/[^ ]+ failed: connect ECONNREFUSED/);
});


test('a gateway that hangs at shutdown: the push in flight is abandoned and the last push gets at most 2 s', { skip }, async (t) => {
  const defer = cleanups(t);
  const port = await freePort();
  const gw = await gatewayOnPort(port);
  defer(() => gw.stop());
  // Interval 60 s: without the shutdown budget, a hung push would hold stop() for 10 s twice over.
  const srv = await startRecordedServer(pushgatewayEnv(gw.url, { METRICS_PUSHGATEWAY_INTERVAL: '60000', METRICS_PUSHGATEWAY_INSTANCE: 'node-9', SHUTDOWN_GRACE_PERIOD: '0' }));
  defer(() => srv.stop());
  await gatewayUntil(gw, (x) => value(x, 'push_time_seconds', { job: 'pws', instance: 'node-9' }) !== undefined, 'the first push');
  gw.child.kill('SIGSTOP');
  defer(() => gw.child.kill('SIGCONT'));
  const started = Date.now();
  await srv.stop();
  const took = Date.now() - started;
  assert.ok(took < 4000, `stop() took ${took} ms`);
  assert.match(srv.log.matching(/^warn /).at(-1)!, /last push to .* failed: no answer within 2000 ms/);
});
