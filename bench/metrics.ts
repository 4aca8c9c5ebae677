// Metrics engine vs prom-client 15.1.3, in one run: a labelled counter add on the frame
// path, rendering 1,000 apps × the ten server families, and heap allocated by 10 million
// counted frames. Run: node dist/bench/metrics.js
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { performance, PerformanceObserver } from 'node:perf_hooks';
import * as promClient from 'prom-client';
import { Counter } from '../src/metrics/counter';
import { Gauge } from '../src/metrics/gauge';
import { Registry } from '../src/metrics/registry';

/** Everything one run measured, for a runner that saves JSON. */
export interface MetricsBenchResult {
  node: string;
  increment: {
    oursNs: number;
    promClientNs: number;
    promClientStyle: string;
    speedup: number;
    target: number;
    pass: boolean;
  };
  render: {
    apps: number;
    families: number;
    oursMs: number;
    promClientMs: number;
    sameSamples: boolean;
    speedup: number;
    target: number;
    pass: boolean;
  };
  allocation: {
    frames: number;
    oursBytes: number;
    oursGcs: number;
    promClientBytesPerFrame: number;
    target: number;
    pass: boolean;
  };
  pass: boolean;
}

const APPS = 1000;
const FRAMES = 10_000_000;
const PROM_FRAMES = 1_000_000;
const PROM_ALLOC_FRAMES = 10_000;
const RENDERS = 30;
const TARGET_INCREMENT = 20;
const TARGET_RENDER = 5;

// The ten server families, as in src/metrics/pws-metrics.ts (without the process collector,
// which prom-client's side would lack).
const FAMILIES: ReadonlyArray<[string, 'counter' | 'gauge', string]> = [
  ['connected', 'gauge', 'The number of currently connected sockets.'],
  ['new_connections_total', 'counter', 'Total amount of pWS connection requests.'],
  ['new_disconnections_total', 'counter', 'Total amount of pWS disconnections.'],
  ['socket_received_bytes', 'counter', 'Total amount of bytes that pWS received.'],
  ['socket_transmitted_bytes', 'counter', 'Total amount of bytes that pWS transmitted.'],
  ['http_received_bytes', 'counter', "Total amount of bytes that pWS's REST API received."],
  ['http_transmitted_bytes', 'counter', "Total amount of bytes that pWS's REST API sent back."],
  ['http_calls_received_total', 'counter', 'Total amount of received REST API calls.'],
  ['ws_messages_received_total', 'counter', 'The total amount of WS messages received from connections by the server.'],
  ['ws_messages_sent_total', 'counter', 'The total amount of WS messages sent to the connections from the server.'],
];

const appId = (i: number): string => `app-${i}`;

function ours(): { registry: Registry; families: Array<Counter | Gauge>; slots: Int32Array } {
  const registry = new Registry();
  const families = FAMILIES.map(([name, type, help]) =>
    registry[type]({ name: `pws_6001_${name}`, help, labelNames: ['app_id'] }),
  );
  // 1024 entries so the loops pick an app with a mask, not a division.
  const slots = new Int32Array(1024);
  for (let i = 0; i < 1024; i++) {
    for (const family of families) slots[i] = family.series([appId(i % APPS)]);
  }
  return { registry, families, slots };
}

function theirs(): { registry: promClient.Registry; families: Array<promClient.Counter | promClient.Gauge>; labels: Array<{ app_id: string }> } {
  const registry = new promClient.Registry();
  const families = FAMILIES.map(([name, type, help]) => {
    const options = { name: `pws_6001_${name}`, help, labelNames: ['app_id'], registers: [registry] };
    return type === 'counter' ? new promClient.Counter(options) : new promClient.Gauge(options);
  });
  // Label objects made once, as a server that kept them per app would: the cheapest fair use.
  const labels = Array.from({ length: 1024 }, (_, i) => ({ app_id: appId(i % APPS) }));
  return { registry, families, labels };
}

// The frame path: what the server does per frame sent to one app.
function oursFrames(transmitted: Counter, sent: Counter, slots: Int32Array, frames: number): void {
  for (let i = 0; i < frames; i++) {
    const slot = slots[i & 1023];
    transmitted.add(slot, 100 + (i & 7));
    sent.add(slot, 1);
  }
}

function oursAdds(counter: Counter, slots: Int32Array, n: number): void {
  for (let i = 0; i < n; i++) counter.add(slots[i & 1023], 1 + (i & 7));
}

function theirLabelsInc(counter: promClient.Counter, labels: Array<{ app_id: string }>, n: number): void {
  for (let i = 0; i < n; i++) counter.labels(labels[i & 1023]).inc(1 + (i & 7));
}

function theirInc(counter: promClient.Counter, labels: Array<{ app_id: string }>, n: number): void {
  for (let i = 0; i < n; i++) counter.inc(labels[i & 1023], 1 + (i & 7));
}

function theirFrames(transmitted: promClient.Counter, sent: promClient.Counter, labels: Array<{ app_id: string }>, frames: number): void {
  for (let i = 0; i < frames; i++) {
    transmitted.inc(labels[i & 1023], 100 + (i & 7));
    sent.inc(labels[i & 1023], 1);
  }
}

// Nanoseconds per call of `fn(n)`, best of three after a warm-up, so JIT tiers are settled.
function nsPerOp(fn: (n: number) => void, n: number): number {
  fn(n / 10);
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const start = process.hrtime.bigint();
    fn(n);
    best = Math.min(best, Number(process.hrtime.bigint() - start) / n);
  }
  return best;
}

async function msPerRender(render: () => unknown): Promise<number> {
  for (let i = 0; i < 5; i++) await render();
  const times: number[] = [];
  for (let i = 0; i < RENDERS; i++) {
    const start = process.hrtime.bigint();
    await render();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

function forcedGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

// Young-generation bytes in use. Every small object is born there, and unlike the total
// heap it does not shrink while the concurrent sweeper finishes the forced collection.
function newSpaceUsed(): number {
  for (const space of v8.getHeapSpaceStatistics()) if (space.space_name === 'new_space') return space.space_used_size;
  throw new Error('no new_space in v8.getHeapSpaceStatistics()');
}

// Bytes allocated by `fn(frames)` in steady state and the collections that ran meanwhile. With no collection
// the young generation's growth is exactly what the frames allocated: a run of 0 frames
// through the same, already compiled, wrapper measures what the probe itself costs.
async function heapGrowth(fn: (frames: number) => void, frames: number): Promise<{ bytes: number; gcs: number }> {
  const gc = forcedGc();
  let from = 0;
  let to = 0;
  const wrapped = (n: number): void => {
    from = performance.now();
    fn(n);
    to = performance.now();
  };
  const measure = (n: number): number => {
    gc();
    const before = newSpaceUsed();
    wrapped(n);
    return newSpaceUsed() - before;
  };
  measure(0);
  measure(frames);
  measure(frames);
  const probe = measure(0);
  let gcs = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) if (entry.startTime >= from && entry.startTime <= to) gcs++;
  });
  observer.observe({ entryTypes: ['gc'] });
  // Best of three: a background compile job finishing mid-run can leave a few hundred bytes.
  let bytes = Infinity;
  for (let round = 0; round < 3; round++) bytes = Math.min(bytes, measure(frames) - probe);
  await new Promise((resolve) => setTimeout(resolve, 20));
  observer.disconnect();
  return { bytes, gcs };
}

function samples(body: string): string[] {
  return body.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
}

/** Runs the three measurements and returns their figures. */
export async function run(): Promise<MetricsBenchResult> {
  const a = ours();
  const b = theirs();
  const [oursTransmitted, oursSent] = [a.families[4], a.families[9]] as Counter[];
  const [theirTransmitted, theirSent] = [b.families[4], b.families[9]] as promClient.Counter[];

  const oursNs = nsPerOp((n) => oursAdds(oursTransmitted, a.slots, n), FRAMES);
  const labelsNs = nsPerOp((n) => theirLabelsInc(theirTransmitted, b.labels, n), PROM_FRAMES);
  const incNs = nsPerOp((n) => theirInc(theirTransmitted, b.labels, n), PROM_FRAMES);
  const promClientNs = Math.min(labelsNs, incNs);
  const promClientStyle = labelsNs <= incNs ? 'labels({app_id}).inc(n)' : 'inc({app_id}, n)';

  // Same values on both sides: family f of app i holds i * 10 + f. prom-client counters
  // have no set(), so they are reset and then incremented to that total.
  for (const family of b.families) family.reset();
  for (let i = 0; i < APPS; i++) {
    for (let f = 0; f < FAMILIES.length; f++) {
      a.families[f].set(a.families[f].series([appId(i)]), i * 10 + f);
      b.families[f].inc({ app_id: appId(i) }, i * 10 + f);
    }
  }
  const sameSamples = samples(a.registry.render()).join('\n') === samples(await b.registry.metrics()).join('\n');
  // Both measured up to the bytes an HTTP answer would send, which also flattens our string.
  const oursMs = await msPerRender(() => Buffer.from(a.registry.render()));
  const promClientMs = await msPerRender(async () => Buffer.from(await b.registry.metrics()));

  const mine = await heapGrowth((n) => oursFrames(oursTransmitted, oursSent, a.slots, n), FRAMES);
  // Few enough frames that the young generation absorbs them without a collection.
  const their = await heapGrowth((n) => theirFrames(theirTransmitted, theirSent, b.labels, n), PROM_ALLOC_FRAMES);

  const increment = {
    oursNs,
    promClientNs,
    promClientStyle,
    speedup: promClientNs / oursNs,
    target: TARGET_INCREMENT,
    pass: promClientNs / oursNs >= TARGET_INCREMENT,
  };
  const render = {
    apps: APPS,
    families: FAMILIES.length,
    oursMs,
    promClientMs,
    sameSamples,
    speedup: promClientMs / oursMs,
    target: TARGET_RENDER,
    pass: sameSamples && promClientMs / oursMs >= TARGET_RENDER,
  };
  const allocation = {
    frames: FRAMES,
    oursBytes: mine.bytes,
    oursGcs: mine.gcs,
    promClientBytesPerFrame: their.gcs === 0 ? their.bytes / PROM_ALLOC_FRAMES : NaN,
    target: 0,
    pass: mine.bytes === 0 && mine.gcs === 0,
  };
  return { node: process.version, increment, render, allocation, pass: increment.pass && render.pass && allocation.pass };
}

function print(r: MetricsBenchResult): void {
  const verdict = (pass: boolean): string => (pass ? 'PASS' : 'FAIL');
  const rows = [
    ['measure', 'ours', 'prom-client 15.1.3', 'ratio', 'target', 'result'],
    [
      'labelled counter add, ns/op',
      r.increment.oursNs.toFixed(2),
      `${r.increment.promClientNs.toFixed(1)} (${r.increment.promClientStyle})`,
      `${r.increment.speedup.toFixed(1)}x`,
      `>= ${r.increment.target}x`,
      verdict(r.increment.pass),
    ],
    [
      `render ${r.render.apps} apps x ${r.render.families} families, ms`,
      r.render.oursMs.toFixed(2),
      r.render.promClientMs.toFixed(2),
      `${r.render.speedup.toFixed(1)}x`,
      `>= ${r.render.target}x${r.render.sameSamples ? '' : ' (bodies differ!)'}`,
      verdict(r.render.pass),
    ],
    [
      `heap bytes over ${r.allocation.frames / 1e6}M frames`,
      `${r.allocation.oursBytes} (${r.allocation.oursGcs} GCs)`,
      `~${Math.round((r.allocation.promClientBytesPerFrame * r.allocation.frames) / 1e6)} MB (${r.allocation.promClientBytesPerFrame.toFixed(0)} B/frame)`,
      '',
      '0 bytes',
      verdict(r.allocation.pass),
    ],
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd());
  console.log(`node ${r.node}: ${r.pass ? 'all targets met' : 'a target was missed'}`);
}

if (require.main === module) {
  run().then(print, (err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
