// Capacity: a node at the size it really runs. pws-server (metrics on) and the bare-uWS reference
// each take N subscribed sockets (--capacity-sockets, 18,000 by default; max: as many as the
// open-file limits allow) in fresh processes, taking turns over --repeats. Each process gets:
//
// 1. a warm-up of 100 subscribed sockets opened and closed, 30 times (JIT and GC code paged in);
// 2. N sockets that connect and subscribe to one channel: the growth of RssAnon per socket, read
//    1 s after the last confirmation, and the server's CPU over the connect phase per 1,000;
// 3. pws-server only: GET /metrics, timed, with the N sockets open;
// 4. a broadcast of --capacity-events events in requests of 10, every delivery counted.
//
// Then, in other fresh processes, the same warm-up and one socket that subscribes to
// --capacity-channels channels of its own: the growth of RssAnon per subscription. That burst
// moves V8's young generation by a step of 4 to 16 MB, which at 10,000 subscriptions is ±400 to
// 1,600 bytes each depending on where the heap's sizing stood, so the budget's figure is read
// after a full garbage collection, forced through the inspector in both servers before both
// readings; the figure 1 s after the burst is shown beside it.
//
// Memory figures are medians over the processes, CPU figures over all of them together.
import { APP, BATCH, contenderSpecs, pwsSender, referenceSender } from './fanout';
import {
  anonymousMemory,
  CLK_TCK,
  collectGarbage,
  cpuTicks,
  hardOpenFileLimit,
  INSPECT_FLAG,
  median,
  openFiles,
  processOpenFileLimit,
  residentMemory,
  sleep,
  startClient,
  startServer,
  type ClientProcess,
  type ServerProcess,
  type ServerSpec,
} from './proc';
import type { BenchOptions, Budget, PartResult } from './run';
import { timeScrapes } from './scrape';

// As long as real channel names mostly are: V8's JSON.parse shares one string among equal values
// of up to 10 characters only, so with a longer name each subscribe frame parses to a string of its own.
const CHANNEL = 'market-prices-eu-west';
const RSS_RATIO_LIMIT = 1.3;
const CONNECT_CPU_RATIO_LIMIT = 1.15;
/** What one more subscription of a socket on many channels may cost beyond the reference's, in bytes. */
const SUBSCRIPTION_EXTRA_LIMIT = 300;
const WARM_UP = 100;
const WARM_UP_CYCLES = 30;
const SETTLE_MS = 1000;
const SCRAPES = 20;
// Open files a process keeps free beyond the sockets: the REST connection, a scrape, the warm-up's stragglers.
const FD_MARGIN = 64;

/** One fresh process's figures. */
interface Sample {
  /** Growth of RssAnon per subscribed socket, and of its parts. */
  anon: number;
  malloc: number;
  other: number;
  connectTicks: number;
  connectMs: number;
  rssAfterConnect: number;
  scrape: { medianMs: number; serverCpuMs: number; bodyBytes: number } | null;
  broadcastTicks: number;
  broadcastMs: number;
}

/** One fresh process's figures for the socket on many channels. */
interface ManySample {
  /** Growth of RssAnon per subscription, both readings after a full GC. */
  kept: number;
  /** The same, read 1 s after the last confirmation, without a GC. */
  afterBurst: number;
  subscribeTicks: number;
}

/** One server's figures. */
export interface CapacityFigures {
  server: string;
  repeats: number;
  anonPerSocketBytes: number;
  anonPerSocketRange: [number, number];
  mallocPerSocketBytes: number;
  otherAnonPerSocketBytes: number;
  /** VmRSS with the N sockets open (median). */
  rssBytes: number;
  cpuSecondsPer1000Connects: number;
  /** Lowest and highest of a single process. */
  cpuPer1000ConnectsRange: [number, number];
  connectsPerSecond: number;
  scrape: { medianMs: number; serverCpuMs: number; bodyBytes: number } | null;
  broadcastCpuPerMillion: number;
  broadcastDeliveriesPerSecond: number;
  /** Per subscription of the socket on many channels, after a full GC (median). */
  perSubscriptionBytes: number;
  perSubscriptionRange: [number, number];
  /** The same without the GC, 1 s after the burst (median). */
  perSubscriptionAfterBurstBytes: number;
  cpuMsPer1000Subscriptions: number;
  anonRatioToReference: number;
  connectCpuRatioToReference: number;
  broadcastRatioToReference: number;
}

/** Everything the part measured, as saved to JSON. */
export interface CapacityResult {
  sockets: number;
  requested: number | null;
  limits: { openFiles: number; hardOpenFiles: number; serverFdsAtStart: number; clientFdsAtStart: number };
  events: number;
  channelsPerSocket: number;
  servers: CapacityFigures[];
}

const wsUrl = (server: ServerProcess): string => `ws://127.0.0.1:${server.port}/app/${APP.key}?protocol=7&client=bench&version=1`;
const memory = (pid: number) => ({ ...residentMemory(pid), ...anonymousMemory(pid) });

/** How many sockets this server and client can both still open, less the margin. */
function allowedSockets(server: ServerProcess, client: ClientProcess): number {
  return Math.min(...[server.pid, client.pid].map((pid) => processOpenFileLimit(pid) - openFiles(pid) - FD_MARGIN));
}

async function sample(spec: ServerSpec, pws: boolean, asked: number, options: BenchOptions): Promise<{ sample: Sample; sockets: number; limits: CapacityResult['limits'] }> {
  const fds = Number.isFinite(asked) ? Math.min(hardOpenFileLimit(), asked + 1024) : hardOpenFileLimit();
  const server = await startServer({ ...spec, fds });
  const client = startClient(fds);
  try {
    const url = wsUrl(server);
    for (let i = 0; i < WARM_UP_CYCLES; i++) {
      await client.open(url, WARM_UP, CHANNEL);
      await client.close();
    }
    const limits = { openFiles: processOpenFileLimit(server.pid), hardOpenFiles: hardOpenFileLimit(), serverFdsAtStart: openFiles(server.pid), clientFdsAtStart: openFiles(client.pid) };
    const sockets = Math.min(asked, allowedSockets(server, client));
    await sleep(SETTLE_MS);
    const before = memory(server.pid);
    const connectStart = cpuTicks(server.pid);
    const connectMs = await client.open(url, sockets, CHANNEL);
    const connectTicks = cpuTicks(server.pid) - connectStart;
    await sleep(SETTLE_MS);
    const after = memory(server.pid);
    const per = (field: keyof typeof before): number => (after[field] - before[field]) / sockets;

    let scrape: Sample['scrape'] = null;
    if (pws) {
      const times = await timeScrapes(server.pid, server.port, SCRAPES, false);
      scrape = { medianMs: times.medianMs, serverCpuMs: times.serverCpuMs, bodyBytes: times.bodyBytes };
    }

    const events = options.capacityEvents;
    client.expect(sockets * events);
    const send = pws ? pwsSender(server.port, CHANNEL) : referenceSender(server.port, CHANNEL);
    const broadcastStart = performance.now();
    const broadcastBefore = cpuTicks(server.pid);
    await send(events, BATCH);
    try {
      await client.delivered(options.timeoutMs);
    } catch (err) {
      throw new Error(`${server.name}, ${events} events to ${sockets} sockets: ${(err as Error).message}`);
    }
    const broadcastTicks = cpuTicks(server.pid) - broadcastBefore;
    const broadcastMs = performance.now() - broadcastStart;
    await client.verify();

    return {
      sockets,
      limits,
      sample: {
        anon: per('anon'),
        malloc: per('malloc'),
        other: per('other'),
        connectTicks,
        connectMs,
        rssAfterConnect: after.rss,
        scrape,
        broadcastTicks,
        broadcastMs,
      },
    };
  } finally {
    await client.stop();
    await server.stop();
  }
}

async function manyChannelsSample(spec: ServerSpec, channels: number): Promise<ManySample> {
  const server = await startServer({ ...spec, fds: 2048, nodeFlags: [...(spec.nodeFlags ?? []), INSPECT_FLAG] });
  const client = startClient(2048);
  try {
    const url = wsUrl(server);
    for (let i = 0; i < WARM_UP_CYCLES; i++) {
      await client.open(url, WARM_UP, CHANNEL);
      await client.close();
    }
    await client.open(url, 1, null);
    await collectGarbage(server);
    const before = residentMemory(server.pid).anon;
    const start = cpuTicks(server.pid);
    await client.subscribe(`many-${process.pid}-`, channels);
    const subscribeTicks = cpuTicks(server.pid) - start;
    await sleep(SETTLE_MS);
    const afterBurst = residentMemory(server.pid).anon;
    await collectGarbage(server);
    const kept = residentMemory(server.pid).anon;
    return { kept: (kept - before) / channels, afterBurst: (afterBurst - before) / channels, subscribeTicks };
  } finally {
    await client.stop();
    await server.stop();
  }
}

/** Measures pws-server (metrics on) and the reference, taking turns over the repeats. */
export async function run(options: BenchOptions): Promise<PartResult<CapacityResult>> {
  const specs = contenderSpecs(options, 0, 'capacity');
  const keys = ['on', 'reference'] as const;
  const samples = new Map<(typeof keys)[number], Sample[]>(keys.map((k) => [k, []]));
  const manySamples = new Map<(typeof keys)[number], ManySample[]>(keys.map((k) => [k, []]));
  let sockets = options.capacitySockets;
  let limits: CapacityResult['limits'] | null = null;
  for (let r = 0; r < options.repeats; r++) {
    for (const key of keys) {
      const s = await sample(specs[key], key !== 'reference', sockets, options);
      if (s.sockets < sockets && Number.isFinite(sockets)) options.log(`capacity: ${sockets} sockets asked, the open-file limits allow ${s.sockets}`);
      // Every later process holds the same number, so their figures compare.
      sockets = s.sockets;
      limits ??= s.limits;
      samples.get(key)!.push(s.sample);
      options.log(`capacity ${r + 1}/${options.repeats}: ${specs[key].name}: ${sockets} subscribed sockets, ${(s.sample.anon / 1024).toFixed(2)} KB each`);
    }
    for (const key of keys) {
      const m = await manyChannelsSample(specs[key], options.capacityChannels);
      manySamples.get(key)!.push(m);
      options.log(`capacity ${r + 1}/${options.repeats}: ${specs[key].name}: one socket on ${options.capacityChannels} channels, ${Math.round(m.kept)} B each kept`);
    }
  }
  const events = options.capacityEvents;
  const figures = keys.map((key) => {
    const list = samples.get(key)!;
    const many = manySamples.get(key)!;
    const mid = (f: (s: Sample) => number): number => median(list.map(f));
    const range = (f: (s: Sample) => number): [number, number] => [Math.min(...list.map(f)), Math.max(...list.map(f))];
    const total = (f: (s: Sample) => number): number => list.reduce((sum, s) => sum + f(s), 0);
    const scrapes = list.map((s) => s.scrape).filter((s) => s !== null);
    const deliveries = sockets * events * list.length;
    return {
      server: specs[key].name,
      repeats: list.length,
      anonPerSocketBytes: mid((s) => s.anon),
      anonPerSocketRange: range((s) => s.anon),
      mallocPerSocketBytes: mid((s) => s.malloc),
      otherAnonPerSocketBytes: mid((s) => s.other),
      rssBytes: mid((s) => s.rssAfterConnect),
      cpuSecondsPer1000Connects: total((s) => s.connectTicks) / CLK_TCK / ((sockets * list.length) / 1000),
      cpuPer1000ConnectsRange: range((s) => s.connectTicks / CLK_TCK / (sockets / 1000)),
      connectsPerSecond: (sockets * list.length) / (total((s) => s.connectMs) / 1000),
      scrape:
        scrapes.length === 0
          ? null
          : { medianMs: median(scrapes.map((s) => s.medianMs)), serverCpuMs: median(scrapes.map((s) => s.serverCpuMs)), bodyBytes: scrapes[0].bodyBytes },
      broadcastCpuPerMillion: total((s) => s.broadcastTicks) / CLK_TCK / (deliveries / 1e6),
      broadcastDeliveriesPerSecond: deliveries / (total((s) => s.broadcastMs) / 1000),
      perSubscriptionBytes: median(many.map((m) => m.kept)),
      perSubscriptionRange: [Math.min(...many.map((m) => m.kept)), Math.max(...many.map((m) => m.kept))] as [number, number],
      perSubscriptionAfterBurstBytes: median(many.map((m) => m.afterBurst)),
      cpuMsPer1000Subscriptions: (many.reduce((sum, m) => sum + m.subscribeTicks, 0) / CLK_TCK / ((options.capacityChannels * many.length) / 1000)) * 1000,
    };
  });
  const ref = figures[1];
  const servers: CapacityFigures[] = figures.map((f) => ({
    ...f,
    anonRatioToReference: f.anonPerSocketBytes / ref.anonPerSocketBytes,
    connectCpuRatioToReference: f.cpuSecondsPer1000Connects / ref.cpuSecondsPer1000Connects,
    broadcastRatioToReference: f.broadcastCpuPerMillion / ref.broadcastCpuPerMillion,
  }));
  const result: CapacityResult = {
    sockets,
    requested: Number.isFinite(options.capacitySockets) ? options.capacitySockets : null,
    limits: limits!,
    events,
    channelsPerSocket: options.capacityChannels,
    servers,
  };
  return report(result);
}

function report(result: CapacityResult): PartResult<CapacityResult> {
  const kb = (bytes: number): string => (bytes / 1024).toFixed(2);
  const int = (n: number): string => Math.round(n).toLocaleString('en-US');
  const [pws, ref] = result.servers;
  const table: string[][] = [
    ['server', 'RSS / socket, KB', 'range', 'vs reference', 'malloc + V8/other', 'VmRSS, MB', 'CPU ms / 1,000 connects', 'range', 'vs reference', 'connects/s'],
  ];
  for (const s of result.servers) {
    table.push([
      s.server,
      kb(s.anonPerSocketBytes),
      `${kb(s.anonPerSocketRange[0])}–${kb(s.anonPerSocketRange[1])}`,
      `${s.anonRatioToReference.toFixed(2)}x`,
      `${kb(s.mallocPerSocketBytes)} + ${kb(s.otherAnonPerSocketBytes)}`,
      (s.rssBytes / 2 ** 20).toFixed(0),
      (s.cpuSecondsPer1000Connects * 1000).toFixed(1),
      `${(s.cpuPer1000ConnectsRange[0] * 1000).toFixed(1)}–${(s.cpuPer1000ConnectsRange[1] * 1000).toFixed(1)}`,
      `${s.connectCpuRatioToReference.toFixed(2)}x`,
      int(s.connectsPerSecond),
    ]);
  }
  const more: string[][] = [
    ['server', 'broadcast CPU s / 1M deliveries', 'vs reference', 'deliveries/s', 'B / subscription, many channels, kept', 'range', '1 s after, no GC', 'CPU ms / 1,000 subscriptions'],
  ];
  for (const s of result.servers) {
    more.push([
      s.server,
      s.broadcastCpuPerMillion.toFixed(3),
      `${s.broadcastRatioToReference.toFixed(3)}x`,
      int(s.broadcastDeliveriesPerSecond),
      int(s.perSubscriptionBytes),
      `${int(s.perSubscriptionRange[0])}–${int(s.perSubscriptionRange[1])}`,
      int(s.perSubscriptionAfterBurstBytes),
      s.cpuMsPer1000Subscriptions.toFixed(1),
    ]);
  }
  const extra = pws.perSubscriptionBytes - ref.perSubscriptionBytes;
  const budgets: Budget[] = [
    { what: `RSS per subscribed socket at ${int(result.sockets)} sockets, vs bare uWS`, value: pws.anonRatioToReference, limit: RSS_RATIO_LIMIT, unit: 'x', pass: pws.anonRatioToReference <= RSS_RATIO_LIMIT },
    { what: 'CPU per connect + subscribe, vs bare uWS', value: pws.connectCpuRatioToReference, limit: CONNECT_CPU_RATIO_LIMIT, unit: 'x', pass: pws.connectCpuRatioToReference <= CONNECT_CPU_RATIO_LIMIT },
    { what: `one subscription of a socket on ${int(result.channelsPerSocket)} channels, beyond bare uWS`, value: extra, limit: SUBSCRIPTION_EXTRA_LIMIT, unit: 'B', pass: extra <= SUBSCRIPTION_EXTRA_LIMIT },
  ];
  const l = result.limits;
  const notes = [
    `${int(result.sockets)} sockets subscribed to one channel, ${CHANNEL}${result.requested === null ? ' (max)' : ''}; median of ${pws.repeats} fresh processes per server, after a warm-up of ${WARM_UP_CYCLES} x ${WARM_UP} subscribed sockets opened and closed`,
    `  limits: open files ${int(l.openFiles)} per process (hard ${int(l.hardOpenFiles)}), ${l.serverFdsAtStart} held by the server after its warm-up, ${l.clientFdsAtStart} by the client, ${FD_MARGIN} kept free`,
    'RSS / socket: growth of RssAnon over the connect phase, read 1 s after the last confirmation, split into the malloc heap and other mappings (mostly V8)',
    `broadcast: ${result.events} events in requests of ${BATCH} to all ${int(result.sockets)} sockets per process, every delivery counted`,
    `many channels: in other fresh processes, one socket subscribes to ${int(result.channelsPerSocket)} channels of its own; growth of RssAnon per subscription,`,
    '  kept: both readings after a full GC forced through the inspector (the burst moves V8\'s young generation by a step of 4-16 MB)',
  ];
  if (pws.scrape !== null) {
    notes.push(`GET /metrics with ${int(result.sockets)} sockets open: ${pws.scrape.medianMs.toFixed(2)} ms round trip (median of ${SCRAPES}), ${pws.scrape.serverCpuMs.toFixed(2)} ms server CPU each, ${pws.scrape.bodyBytes} bytes`);
  }
  return {
    part: 'capacity',
    title: `Capacity: ${int(result.sockets)} subscribed sockets`,
    table,
    moreTables: [{ title: 'Broadcast to every socket, and a socket on many channels', table: more }],
    budgets,
    notes,
    figures: result,
  };
}
