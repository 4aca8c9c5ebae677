// Connections: what an idle socket costs. A fresh server process gets a warm-up (100 sockets
// opened and closed, 30 times: JIT and GC code paged in, the young generation sized), then N
// sockets that connect and stay idle after connection_established. Figures: the growth of the
// server's resident anonymous memory per socket, and the server's CPU per 1,000 connects
// (utime + stime over the connect phase only), each beside the bare-uWS reference. V8 sizes its
// heap in 256 KB pages and MB-sized young generations, which moves a 5,000-socket figure by a few
// hundred bytes per socket from one process to the next: each server is measured in several
// fresh processes, taking turns, and the median is kept.
import { contenderSpecs } from './fanout';
import { anonymousMemory, CLK_TCK, cpuTicks, median, residentMemory, sleep, startClient, startServer, type ServerSpec } from './proc';
import type { BenchOptions, Budget, PartResult } from './run';

const WARM_UP = 100;
const WARM_UP_CYCLES = 30;
// How long memory is left to settle after the last connect before it is read.
const SETTLE_MS = 1000;
const RSS_LIMIT_BYTES = 6 * 1024;

/** One fresh process's figures. */
interface Sample {
  rssBefore: number;
  rssAfter: number;
  rss: number;
  anon: number;
  malloc: number;
  other: number;
  ticks: number;
  ms: number;
}

/** One server's figures: memory as the median over the repeats, CPU over all their connects. */
export interface ConnectionFigures {
  server: string;
  sockets: number;
  repeats: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  /** Growth of RssAnon per socket: what the sockets hold, without code paged in meanwhile. */
  anonPerConnectionBytes: number;
  /** Lowest and highest over the repeats. */
  anonPerConnectionRange: [number, number];
  /** Of which in the brk heap (native allocations: uWS's per-socket state). */
  mallocPerConnectionBytes: number;
  /** Of which in other anonymous mappings (mostly V8's heap). */
  otherAnonPerConnectionBytes: number;
  /** Growth of VmRSS per socket. */
  rssPerConnectionBytes: number;
  cpuSecondsPer1000Connects: number;
  connectsPerSecond: number;
  anonRatioToReference: number;
  cpuRatioToReference: number;
}

/** Everything the part measured, as saved to JSON. */
export interface ConnectionsResult {
  sockets: number;
  servers: ConnectionFigures[];
}

async function sample(spec: ServerSpec, sockets: number): Promise<Sample> {
  const fds = sockets + 1024;
  const server = await startServer({ ...spec, fds });
  const client = startClient(fds);
  try {
    const url = `ws://127.0.0.1:${server.port}/app/bench-key?protocol=7&client=bench&version=1`;
    for (let i = 0; i < WARM_UP_CYCLES; i++) {
      await client.open(url, WARM_UP, null);
      await client.close();
    }
    await sleep(SETTLE_MS);
    const before = { ...residentMemory(server.pid), ...anonymousMemory(server.pid) };
    const start = cpuTicks(server.pid);
    const ms = await client.open(url, sockets, null);
    const ticks = cpuTicks(server.pid) - start;
    await sleep(SETTLE_MS);
    const after = { ...residentMemory(server.pid), ...anonymousMemory(server.pid) };
    await client.close();
    const per = (field: keyof typeof before): number => (after[field] - before[field]) / sockets;
    return { rssBefore: before.rss, rssAfter: after.rss, rss: per('rss'), anon: per('anon'), malloc: per('malloc'), other: per('other'), ticks, ms };
  } finally {
    await client.stop();
    await server.stop();
  }
}

/** Measures pws-server (metrics on, then off) and the reference, taking turns over the repeats. */
export async function run(options: BenchOptions): Promise<PartResult<ConnectionsResult>> {
  const sockets = options.connections;
  const repeats = options.repeats;
  const specs = contenderSpecs(options, 0, 'connections');
  const keys = ['on', 'off', 'reference'] as const;
  const samples = new Map<(typeof keys)[number], Sample[]>(keys.map((k) => [k, []]));
  for (let r = 0; r < repeats; r++) {
    for (const key of keys) {
      const s = await sample(specs[key], sockets);
      samples.get(key)!.push(s);
      options.log(`connections ${r + 1}/${repeats}: ${specs[key].name}: ${sockets} sockets, ${(s.anon / 1024).toFixed(2)} KB each`);
    }
  }
  const figures = keys.map((key) => {
    const list = samples.get(key)!;
    const mid = (field: keyof Sample) => median(list.map((s) => s[field]));
    const ticks = list.reduce((sum, s) => sum + s.ticks, 0);
    const ms = list.reduce((sum, s) => sum + s.ms, 0);
    return {
      server: specs[key].name,
      sockets,
      repeats,
      rssBeforeBytes: mid('rssBefore'),
      rssAfterBytes: mid('rssAfter'),
      anonPerConnectionBytes: mid('anon'),
      anonPerConnectionRange: [Math.min(...list.map((s) => s.anon)), Math.max(...list.map((s) => s.anon))] as [number, number],
      mallocPerConnectionBytes: mid('malloc'),
      otherAnonPerConnectionBytes: mid('other'),
      rssPerConnectionBytes: mid('rss'),
      cpuSecondsPer1000Connects: ticks / CLK_TCK / ((sockets * repeats) / 1000),
      connectsPerSecond: (sockets * repeats) / (ms / 1000),
    };
  });
  const ref = figures[2];
  const servers: ConnectionFigures[] = figures.map((f) => ({
    ...f,
    anonRatioToReference: f.anonPerConnectionBytes / ref.anonPerConnectionBytes,
    cpuRatioToReference: f.cpuSecondsPer1000Connects / ref.cpuSecondsPer1000Connects,
  }));
  const kb = (bytes: number): string => (bytes / 1024).toFixed(2);
  const table: string[][] = [
    ['server', 'RSS / socket, KB', 'range', 'vs reference', 'malloc + V8/other', 'VmRSS / socket', 'CPU ms / 1,000 connects', 'vs reference', 'connects/s'],
  ];
  for (const s of servers) {
    table.push([
      s.server,
      kb(s.anonPerConnectionBytes),
      `${kb(s.anonPerConnectionRange[0])}–${kb(s.anonPerConnectionRange[1])}`,
      `${s.anonRatioToReference.toFixed(2)}x`,
      `${kb(s.mallocPerConnectionBytes)} + ${kb(s.otherAnonPerConnectionBytes)}`,
      kb(s.rssPerConnectionBytes),
      (s.cpuSecondsPer1000Connects * 1000).toFixed(1),
      `${s.cpuRatioToReference.toFixed(2)}x`,
      Math.round(s.connectsPerSecond).toLocaleString('en-US'),
    ]);
  }
  const on = servers[0];
  const budgets: Budget[] = [
    { what: 'idle RSS per connection, metrics on vs bare uWS', value: on.anonRatioToReference, limit: 1.5, unit: 'x', pass: on.anonRatioToReference <= 1.5 },
    {
      what: 'idle RSS per connection, metrics on',
      value: on.anonPerConnectionBytes / 1024,
      limit: RSS_LIMIT_BYTES / 1024,
      unit: 'KB',
      pass: on.anonPerConnectionBytes < RSS_LIMIT_BYTES,
    },
  ];
  const notes = [
    `${sockets} idle sockets per server; median of ${repeats} fresh processes each, after a warm-up of ${WARM_UP_CYCLES} x ${WARM_UP} sockets opened and closed`,
    'RSS / socket: growth of RssAnon (anonymous resident memory), split into the malloc heap and other mappings (mostly V8);',
    '  VmRSS / socket also counts file pages (code) mapped in meanwhile',
    `CPU per 1,000 connects over all ${sockets * repeats} connects of each server`,
  ];
  return { part: 'connections', title: 'Idle connections', table, budgets, notes, figures: { sockets, servers } };
}
