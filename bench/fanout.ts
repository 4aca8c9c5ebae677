// Fan-out: N sockets on one channel, M events through the REST API (batches of 10, then one per
// request, then one per request with 20 requests in flight), every delivery counted by the
// clients. Four servers take turns round by round — pws-server with metrics on, with metrics
// off, with metrics on and a console open streaming its event log (CONSOLE_ENABLED), and the
// bare-uWS reference — so that drift in the machine's load falls on all alike. Figures are each server's own CPU (utime + stime
// from /proc/<pid>/stat) over the event phase only, per million deliveries.
import { Agent } from 'node:http';
import { join } from 'node:path';
import Pusher from 'pusher';
import {
  CLK_TCK,
  cpuTicks,
  pwsServerSpec,
  referenceServerSpec,
  startClient,
  startServer,
  type ClientProcess,
  type ServerProcess,
  type ServerSpec,
} from './proc';
import type { BenchOptions, Budget, PartResult } from './run';

export const APP = { id: 'bench', key: 'bench-key', secret: 'bench-secret' };
export const CHANNEL = 'bench';
// Every benchmark event name starts with "bench": the client counts frames by that first letter.
export const EVENT = 'bench-event';
// A typical small app payload: about 100 bytes of JSON, delivered as a 168-byte frame.
export const DATA = JSON.stringify({ kind: 'price', symbol: 'ACME', price: 123.45, note: 'x'.repeat(46) });
export const BATCH = 10;
// Requests in flight at once in the concurrent pass: many queue workers each triggering one event.
export const IN_FLIGHT = 20;
const CONCURRENT_LIMIT = 1.1;
// An open console streaming the log, against the same server with the console off (issue #22).
const CONSOLE_LIMIT = 1.05;
const CONSOLE_PASSWORD = 'bench-console';

/** The passes, in order: how many events a request carries and how many requests are in flight. */
const PASSES = [
  { pass: 'batched', batch: BATCH, inFlight: 1 },
  { pass: 'single', batch: 1, inFlight: 1 },
  { pass: 'concurrent', batch: 1, inFlight: IN_FLIGHT },
] as const;
type Pass = (typeof PASSES)[number];

/** One server under test, its clients, and how events reach it. */
interface Contender {
  key: 'on' | 'off' | 'console' | 'reference';
  server: ServerProcess;
  client: ClientProcess;
  /** Sends `events` events in requests of `batch`, `inFlight` requests at a time (default one). */
  send(events: number, batch: number, inFlight?: number): Promise<void>;
}

/** One measured round: M events to N sockets on one server. */
export interface Round {
  ticks: number;
  ms: number;
  deliveries: number;
}

/** A server's figures for one pass. */
export interface FanOutFigures {
  server: string;
  rounds: number;
  deliveries: number;
  cpuSeconds: number;
  /** Server CPU seconds per million deliveries. */
  cpuPerMillion: number;
  /** Lowest and highest of the per-round figures, to show the spread. */
  cpuPerMillionRange: [number, number];
  deliveriesPerSecond: number;
  /** cpuPerMillion over the reference's. */
  ratioToReference: number;
}

/** Everything the part measured, as saved to JSON. */
export interface FanOutResult {
  sockets: number;
  events: number;
  payloadBytes: number;
  frameBytes: number;
  passes: Array<{ pass: Pass['pass']; batch: number; inFlight: number; servers: FanOutFigures[]; metricsOnVsOff: number; consoleOpenVsOff: number }>;
  /** Bytes the open console's event stream carried over the whole run. */
  consoleStreamBytes: number;
}

const PWS_ENV = {
  DEFAULT_APP_ID: APP.id,
  DEFAULT_APP_KEY: APP.key,
  DEFAULT_APP_SECRET: APP.secret,
  // No Pusher-level pings in the middle of a measurement; the client would answer them anyway.
  ACTIVITY_TIMEOUT: '3600',
  SHUTDOWN_GRACE_PERIOD: '200',
};

/** The server specs of this part, also used by the connections part. */
export function contenderSpecs(options: BenchOptions, fds: number, part: string): Record<Contender['key'], ServerSpec> {
  const nodeFlags = options.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', join(options.profileDir, part)] : [];
  return {
    on: { ...pwsServerSpec('pws-server, metrics on', { ...PWS_ENV, METRICS_ENABLED: 'true' }, undefined, options.pwsBin), fds, nodeFlags },
    off: { ...pwsServerSpec('pws-server, metrics off', { ...PWS_ENV, METRICS_ENABLED: 'false' }, undefined, options.pwsBin), fds, nodeFlags },
    console: { ...pwsServerSpec('pws-server, metrics on, console open', { ...PWS_ENV, METRICS_ENABLED: 'true', CONSOLE_ENABLED: 'true', CONSOLE_PASSWORD }, undefined, options.pwsBin), fds, nodeFlags },
    reference: { ...referenceServerSpec(), fds, nodeFlags },
  };
}

export function pwsSender(port: number, channel = CHANNEL): Contender['send'] {
  // Kept-alive connections, as a backend service holds: one per request in flight.
  const clients = new Map<number, Pusher>();
  const client = (inFlight: number): Pusher => {
    let pusher = clients.get(inFlight);
    if (pusher === undefined) {
      const agent = new Agent({ keepAlive: true, maxSockets: inFlight });
      clients.set(inFlight, (pusher = new Pusher({ ...APP, appId: APP.id, host: '127.0.0.1', port: String(port), useTLS: false, agent })));
    }
    return pusher;
  };
  return (events, batch, inFlight = 1) => {
    const pusher = client(inFlight);
    return sendAll(events, batch, inFlight, async (n) => {
      const response =
        n === 1
          ? await pusher.trigger(channel, EVENT, DATA)
          : await pusher.triggerBatch(Array.from({ length: n }, () => ({ channel, name: EVENT, data: DATA })));
      if (response.status !== 200) throw new Error(`pws-server answered ${response.status} to an event`);
      await response.arrayBuffer();
    });
  };
}

// The same bodies the SDK sends, unsigned.
export function referenceSender(port: number, channel = CHANNEL): Contender['send'] {
  const base = `http://127.0.0.1:${port}/apps/${APP.id}`;
  const single = JSON.stringify({ name: EVENT, data: DATA, channels: [channel] });
  return (events, batch, inFlight = 1) =>
    sendAll(events, batch, inFlight, async (n) => {
      const [path, body] = n === 1 ? ['/events', single] : ['/batch_events', JSON.stringify({ batch: Array.from({ length: n }, () => ({ channel, name: EVENT, data: DATA })) })];
      const response = await fetch(base + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
      if (response.status !== 200) throw new Error(`reference server answered ${response.status} to an event`);
      await response.arrayBuffer();
    });
}

// `inFlight` workers, each sending its next request of up to `batch` events as soon as its last is answered.
async function sendAll(events: number, batch: number, inFlight: number, request: (n: number) => Promise<void>): Promise<void> {
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (sent < events) {
      const n = Math.min(batch, events - sent);
      sent += n;
      await request(n);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

async function round(c: Contender, sockets: number, events: number, { batch, inFlight }: Pass, timeoutMs: number): Promise<Round> {
  const deliveries = sockets * events;
  c.client.expect(deliveries);
  const start = performance.now();
  const before = cpuTicks(c.server.pid);
  await c.send(events, batch, inFlight);
  try {
    await c.client.delivered(timeoutMs);
  } catch (err) {
    throw new Error(`${c.server.name}, ${events} events in requests of ${batch}, ${inFlight} in flight: ${(err as Error).message}`);
  }
  const ticks = cpuTicks(c.server.pid) - before;
  const ms = performance.now() - start;
  await c.client.verify();
  return { ticks, ms, deliveries };
}

/** A server's figures over its rounds: CPU per million deliveries, in all and per round. */
export function figures(server: string, rounds: Round[]): Omit<FanOutFigures, 'ratioToReference'> {
  const ticks = rounds.reduce((s, r) => s + r.ticks, 0);
  const deliveries = rounds.reduce((s, r) => s + r.deliveries, 0);
  const ms = rounds.reduce((s, r) => s + r.ms, 0);
  const perRound = rounds.map((r) => r.ticks / CLK_TCK / (r.deliveries / 1e6));
  return {
    server,
    rounds: rounds.length,
    deliveries,
    cpuSeconds: ticks / CLK_TCK,
    cpuPerMillion: ticks / CLK_TCK / (deliveries / 1e6),
    cpuPerMillionRange: [Math.min(...perRound), Math.max(...perRound)],
    deliveriesPerSecond: deliveries / (ms / 1000),
  };
}

/**
 * Plays rounds on each contender in turn and returns each one's measured rounds. A warm-up
 * round each (JIT, buffers) also sizes the measurement: enough rounds that the cheapest spends
 * options.minCpu seconds, so 10 ms ticks stay below 0.5 %. Who goes first rotates, so that no
 * contender always runs right after the same one.
 */
export async function takeTurns<C>(contenders: C[], play: (c: C) => Promise<Round>, options: BenchOptions, what: string): Promise<Round[][]> {
  let cheapest = Infinity;
  for (const c of contenders) {
    const warm = await play(c);
    cheapest = Math.min(cheapest, Math.max(1, warm.ticks) / CLK_TCK);
  }
  const rounds = Math.max(options.minRounds, Math.min(options.maxRounds, Math.ceil(options.minCpu / cheapest)));
  options.log(`${what}: ${rounds} rounds per server`);
  const measured = contenders.map((): Round[] => []);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < contenders.length; i++) {
      const k = (r + i) % contenders.length;
      measured[k].push(await play(contenders[k]));
    }
  }
  return measured;
}

/** Runs the passes on all three servers and returns the table and budgets. */
export async function run(options: BenchOptions): Promise<PartResult<FanOutResult>> {
  const { sockets, events } = options;
  const fds = sockets + 1024;
  const specs = contenderSpecs(options, fds, 'fanout');
  const contenders: Contender[] = [];
  let consoleStream: ConsoleStream | null = null;
  try {
    for (const key of ['on', 'off', 'console', 'reference'] as const) {
      const server = await startServer(specs[key]);
      const client = startClient(fds);
      contenders.push({ key, server, client, send: key === 'reference' ? referenceSender(server.port) : pwsSender(server.port) });
      const ms = await client.open(`ws://127.0.0.1:${server.port}/app/${APP.key}?protocol=7&client=bench&version=1`, sockets, CHANNEL);
      options.log(`fanout: ${sockets} sockets subscribed on ${server.name} in ${(ms / 1000).toFixed(1)} s`);
      if (key === 'console') consoleStream = await openConsole(server.port);
    }

    const result: FanOutResult = { sockets, events, payloadBytes: DATA.length, frameBytes: JSON.stringify({ event: EVENT, channel: CHANNEL, data: DATA }).length, passes: [], consoleStreamBytes: 0 };
    for (const p of PASSES) {
      const measured = await takeTurns(contenders, (c) => round(c, sockets, events, p, options.timeoutMs), options, `fanout ${p.pass}: ${events} events x ${sockets} sockets`);
      const by = (key: Contender['key']) => {
        const k = contenders.findIndex((c) => c.key === key);
        return figures(contenders[k].server.name, measured[k]);
      };
      const ref = by('reference');
      const servers = (['on', 'off', 'reference', 'console'] as const).map((key) => {
        const f = by(key);
        return { ...f, ratioToReference: f.cpuPerMillion / ref.cpuPerMillion };
      });
      const consoleOpenVsOff = servers[3].cpuPerMillion / servers[0].cpuPerMillion;
      result.passes.push({ pass: p.pass, batch: p.batch, inFlight: p.inFlight, servers, metricsOnVsOff: servers[0].cpuPerMillion / servers[1].cpuPerMillion, consoleOpenVsOff });
    }
    result.consoleStreamBytes = consoleStream!.bytes();
    if (result.consoleStreamBytes === 0) throw new Error('the console stream carried nothing: the console was not open');
    return report(result);
  } finally {
    consoleStream?.close();
    for (const c of contenders) await c.client.stop();
    for (const c of contenders) await c.server.stop();
  }
}

function report(result: FanOutResult): PartResult<FanOutResult> {
  const table: string[][] = [['pass', 'server', 'CPU s / 1M deliveries', 'per-round range', 'deliveries/s', 'vs reference']];
  for (const p of result.passes) {
    for (const s of p.servers) {
      table.push([
        `${p.pass} (${p.batch}/request${p.inFlight > 1 ? `, ${p.inFlight} in flight` : ''})`,
        s.server,
        s.cpuPerMillion.toFixed(3),
        `${s.cpuPerMillionRange[0].toFixed(3)}–${s.cpuPerMillionRange[1].toFixed(3)}`,
        Math.round(s.deliveriesPerSecond).toLocaleString('en-US'),
        `${s.ratioToReference.toFixed(3)}x`,
      ]);
    }
  }
  const batched = result.passes.find((p) => p.pass === 'batched')!;
  const budgets: Budget[] = [
    {
      what: 'fan-out CPU, batched, metrics on vs bare uWS',
      value: batched.servers[0].ratioToReference,
      limit: 1.25,
      unit: 'x',
      pass: batched.servers[0].ratioToReference <= 1.25,
    },
    { what: 'fan-out CPU, batched, metrics on vs off', value: batched.metricsOnVsOff, limit: 1.03, unit: 'x', pass: batched.metricsOnVsOff <= 1.03 },
    { what: 'fan-out CPU, batched, console open and streaming vs console off (metrics on)', value: batched.consoleOpenVsOff, limit: CONSOLE_LIMIT, unit: 'x', pass: batched.consoleOpenVsOff <= CONSOLE_LIMIT },
  ];
  const concurrent = result.passes.find((p) => p.pass === 'concurrent');
  if (concurrent !== undefined) {
    const ratio = concurrent.servers[0].ratioToReference;
    budgets.push({ what: `fan-out CPU, single events ${concurrent.inFlight} in flight, metrics on vs bare uWS`, value: ratio, limit: CONCURRENT_LIMIT, unit: 'x', pass: ratio <= CONCURRENT_LIMIT });
  }
  const single = result.passes.find((p) => p.pass === 'single');
  const notes = [
    `${result.sockets} sockets on one channel, ${result.events} events per round, ${result.frameBytes}-byte frames; server CPU over the event phase only`,
  ];
  if (single !== undefined) notes.push(`single-event pass, metrics on vs off: ${single.metricsOnVsOff.toFixed(3)}x (no budget)`);
  notes.push(`console open vs off: ${result.passes.map((p) => `${p.pass} ${p.consoleOpenVsOff.toFixed(3)}x`).join(', ')}; its stream carried ${Math.round(result.consoleStreamBytes / 1024)} KB`);
  return { part: 'fanout', title: 'Fan-out through the REST API', table, budgets, notes, figures: result };
}

/** A console's event stream held open by the bench, read and counted like a browser would. */
interface ConsoleStream {
  bytes(): number;
  close(): void;
}

// Logs in and opens the stream of the benchmark app: every REST event becomes a log row on it.
async function openConsole(port: number): Promise<ConsoleStream> {
  const base = `http://127.0.0.1:${port}/console`;
  const login = await fetch(`${base}/login`, { method: 'POST', body: new URLSearchParams({ password: CONSOLE_PASSWORD }), redirect: 'manual' });
  const cookie = login.headers.get('set-cookie')?.split(';')[0];
  if (login.status !== 303 || cookie === undefined) throw new Error(`console login answered ${login.status}`);
  const controller = new AbortController();
  const stream = await fetch(`${base}/api/stream?app=${APP.id}`, { headers: { cookie }, signal: controller.signal });
  if (stream.status !== 200 || stream.body === null) throw new Error(`console stream answered ${stream.status}`);
  let bytes = 0;
  void (async () => {
    for await (const chunk of stream.body!) bytes += (chunk as Uint8Array).byteLength;
  })().catch(() => undefined);
  return { bytes: () => bytes, close: () => controller.abort() };
}
