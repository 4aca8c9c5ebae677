// `npm run bench [-- part… --flag value…]`: the hot paths end to end, each beside a reference
// measured in the same run, with PASS/FAIL against the budgets. Prints one table per part and
// writes bench/results/<part>-<timestamp>.json and bench/results/latest.json.
//
//   npm run bench                          all eight parts
//   npm run bench -- fanout                one part: metrics, fanout, connections, capacity, limits, scrape, cluster, apps
//   npm run bench -- fanout --sockets 500 --events 100 --min-cpu 0.5    a quick run
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { machine, PWS_BIN, ROOT, type Machine } from './proc';

/** A budget from the issue, checked against one figure. */
export interface Budget {
  what: string;
  value: number;
  /** The figure must be at most this (at least, with atLeast). */
  limit: number;
  atLeast?: boolean;
  unit: string;
  pass: boolean;
}

/** What a part hands back: a table to print, its budgets, and all its figures for the JSON. */
export interface PartResult<F = unknown> {
  part: Part;
  title: string;
  /** First row is the header. */
  table: string[][];
  /** Further tables, each printed under its title after the first. */
  moreTables?: Array<{ title: string; table: string[][] }>;
  budgets: Budget[];
  notes: string[];
  figures: F;
}

/** Settings shared by the parts; each flag is `--name value` on the command line. */
export interface BenchOptions {
  /** Fan-out: subscribed sockets per server (--sockets). */
  sockets: number;
  /** Fan-out: events per round (--events). */
  events: number;
  /** Connections: idle sockets opened per server (--connections). */
  connections: number;
  /** Connections: fresh server processes measured per server, median kept (--repeats). */
  repeats: number;
  /** Scrape: configured apps (--apps). */
  apps: number;
  /** Scrape: timed GET /metrics requests (--scrapes). */
  scrapes: number;
  /** Scrape: open sockets in the second measurement (--scrape-sockets), up to the open-file limits. */
  scrapeSockets: number;
  /** Fan-out: rounds are added until the cheapest server has spent this many CPU seconds (--min-cpu). */
  minCpu: number;
  minRounds: number;
  maxRounds: number;
  /** How long a round may wait for its last delivery before failing as lost (--timeout, seconds). */
  timeoutMs: number;
  /** Cluster: pws-server nodes on one Redis in the CPU comparison, sharing --sockets (--cluster-nodes). */
  clusterNodes: number;
  /** Cluster capacity run: nodes (--capacity-nodes). */
  capacityNodes: number;
  /** Cluster capacity run: sockets per node, Infinity for as many as the open-file limits allow (--capacity <n|max>). */
  capacity: number;
  /** Cluster capacity run and capacity part: events, sent in requests of 10 (--capacity-events). */
  capacityEvents: number;
  /** Capacity part: subscribed sockets per server, Infinity for as many as the open-file limits allow (--capacity-sockets <n|max>). */
  capacitySockets: number;
  /** Capacity part: channels the socket on many channels subscribes to (--capacity-channels). */
  capacityChannels: number;
  /** The redis-server binary the cluster part starts (--redis-server). */
  redisServer: string;
  /** The pws-server launcher to measure (--pws-bin): bin/pws-server.js, or another build's. */
  pwsBin: string;
  /** Start the servers with node --cpu-prof, profiles into profileDir (--cpu-prof). */
  cpuProf: boolean;
  profileDir: string;
  log(message: string): void;
}

const PARTS = ['metrics', 'fanout', 'connections', 'capacity', 'limits', 'scrape', 'cluster', 'apps'] as const;
export type Part = (typeof PARTS)[number];

const RESULTS = join(ROOT, 'bench', 'results');

const USAGE = `Usage: npm run bench -- [part…] [options]

Parts (default: all, in this order):
  metrics       metrics engine micro-benchmarks vs prom-client (bench/metrics.ts)
  fanout        REST events to N subscribed sockets: pws-server (metrics on, off, console open) vs bare uWS
  connections   idle RSS per connection and CPU per 1,000 connects vs bare uWS
  capacity      18,000 subscribed sockets: RSS per socket, connect CPU, a scrape, a broadcast,
                and a socket on many channels, vs bare uWS
  limits        every per-app limit set but not reached, against none: fan-out and client events
  scrape        /metrics with 1,000 apps configured and active, then with 19,000 open sockets
  cluster       nodes on one Redis: CPU per delivery vs one node, Redis commands per event, capacity
  apps          connect + subscribe with apps from PostgreSQL vs from config, and the queries it costs

Options:
  --sockets <n>           fan-out sockets per server, and the limits and cluster parts' (default 2000)
  --events <n>            fan-out, limits and cluster: events per round (default 300)
  --min-cpu <s>           fan-out, limits and cluster: CPU seconds the cheapest server must spend per pass (default 8)
  --max-rounds <n>        fan-out, limits and cluster: cap on rounds per pass (default 30)
  --connections <n>       connections part: sockets per server (default 5000); apps part: per round (at most 2000)
  --repeats <n>           connections and capacity parts: fresh processes per server, median kept (default 3)
  --apps <n>              scrape part: configured apps (default 1000)
  --scrapes <n>           scrape part: timed GET /metrics requests (default 200)
  --scrape-sockets <n>    scrape part: open sockets in the second measurement (default 19000)
  --cluster-nodes <n>     cluster part: nodes sharing the --sockets in the CPU comparison (default 2)
  --capacity <n|max>      cluster part: sockets per node in the capacity run; max = as many as the
                          open-file limits allow (default 5000)
  --capacity-nodes <n>    cluster part: nodes in the capacity run (default 3)
  --capacity-events <n>   cluster and capacity parts: events in the capacity runs (default 50)
  --capacity-sockets <n|max>  capacity part: subscribed sockets per server; max = as many as the
                          open-file limits allow (default 18000)
  --capacity-channels <n> capacity part: channels of the socket on many channels (default 10000)
  --redis-server <path>   cluster part: the redis-server to start (default: redis-server on PATH)
  --timeout <s>           seconds to wait for the last delivery before failing (default 60)
  --cpu-prof              run the servers under node --cpu-prof (profiles in bench/results/profiles)
  --pws-bin <path>        measure another build's bin/pws-server.js (e.g. a patched copy) instead of this one`;

function parseArgs(argv: string[]): { parts: Part[]; options: BenchOptions } {
  const parts: Part[] = [];
  const options: BenchOptions = {
    sockets: 2000,
    events: 300,
    connections: 5000,
    repeats: 3,
    apps: 1000,
    scrapes: 200,
    scrapeSockets: 19_000,
    minCpu: 8,
    minRounds: 3,
    maxRounds: 30,
    timeoutMs: 60_000,
    clusterNodes: 2,
    capacityNodes: 3,
    capacity: 5000,
    capacityEvents: 50,
    capacitySockets: 18_000,
    capacityChannels: 10_000,
    redisServer: 'redis-server',
    pwsBin: PWS_BIN,
    cpuProf: false,
    profileDir: join(RESULTS, 'profiles'),
    log: (message) => console.log(`  · ${message}`),
  };
  const numeric: Record<string, (n: number) => void> = {
    '--sockets': (n) => (options.sockets = n),
    '--events': (n) => (options.events = n),
    '--connections': (n) => (options.connections = n),
    '--repeats': (n) => (options.repeats = n),
    '--apps': (n) => (options.apps = n),
    '--scrapes': (n) => (options.scrapes = n),
    '--scrape-sockets': (n) => (options.scrapeSockets = n),
    '--min-cpu': (n) => (options.minCpu = n),
    '--max-rounds': (n) => (options.maxRounds = n),
    '--min-rounds': (n) => (options.minRounds = n),
    '--timeout': (n) => (options.timeoutMs = n * 1000),
    '--cluster-nodes': (n) => (options.clusterNodes = n),
    '--capacity-nodes': (n) => (options.capacityNodes = n),
    '--capacity-events': (n) => (options.capacityEvents = n),
    '--capacity-channels': (n) => (options.capacityChannels = n),
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') {
      console.log(USAGE);
      process.exit(0);
    } else if (arg === '--cpu-prof') {
      options.cpuProf = true;
    } else if (arg === '--pws-bin') {
      const path = argv[++i];
      if (path === undefined || !existsSync(path)) throw new Error(`--pws-bin needs the path of a pws-server launcher, got ${path}`);
      options.pwsBin = resolve(path);
    } else if (arg === '--capacity') {
      const value = argv[++i];
      options.capacity = value === 'max' ? Infinity : Number(value);
      if (!(options.capacity > 0)) throw new Error('--capacity needs a positive number or max');
    } else if (arg === '--capacity-sockets') {
      const value = argv[++i];
      options.capacitySockets = value === 'max' ? Infinity : Number(value);
      if (!(options.capacitySockets > 0)) throw new Error('--capacity-sockets needs a positive number or max');
    } else if (arg === '--redis-server') {
      const path = argv[++i];
      if (path === undefined) throw new Error('--redis-server needs the path of a redis-server binary');
      options.redisServer = path;
    } else if (arg in numeric) {
      const value = Number(argv[++i]);
      if (!(value > 0)) throw new Error(`${arg} needs a positive number`);
      numeric[arg](value);
    } else if ((PARTS as readonly string[]).includes(arg)) {
      parts.push(arg as Part);
    } else {
      throw new Error(`unknown argument ${arg}\n\n${USAGE}`);
    }
  }
  options.minRounds = Math.min(options.minRounds, options.maxRounds);
  return { parts: parts.length === 0 ? [...PARTS] : PARTS.filter((p) => parts.includes(p)), options };
}

async function runPart(part: Part, options: BenchOptions): Promise<PartResult> {
  switch (part) {
    case 'metrics':
      return metricsPart();
    case 'fanout':
      return (await import('./fanout')).run(options);
    case 'connections':
      return (await import('./connections')).run(options);
    case 'capacity':
      return (await import('./capacity')).run(options);
    case 'limits':
      return (await import('./limits')).run(options);
    case 'scrape':
      return (await import('./scrape')).run(options);
    case 'cluster':
      return (await import('./cluster')).run(options);
    case 'apps':
      return (await import('./apps')).run(options);
  }
}

// Part 1 is bench/metrics.ts, written with the metrics engine: run it and show its figures here.
async function metricsPart(): Promise<PartResult> {
  const { run } = await import('./metrics');
  const r = await run();
  const table = [
    ['measure', 'pws metrics', 'prom-client 15.1.3', 'ratio'],
    ['labelled counter add, ns', r.increment.oursNs.toFixed(2), `${r.increment.promClientNs.toFixed(1)} (${r.increment.promClientStyle})`, `${r.increment.speedup.toFixed(1)}x faster`],
    [
      `render ${r.render.apps} apps x ${r.render.families} families, ms`,
      r.render.oursMs.toFixed(2),
      r.render.promClientMs.toFixed(2),
      `${r.render.speedup.toFixed(1)}x faster${r.render.sameSamples ? '' : ' (BODIES DIFFER)'}`,
    ],
    [
      'heap bytes per 1M counted frames',
      `${((r.allocation.oursBytes / r.allocation.frames) * 1e6).toFixed(0)} (${r.allocation.oursGcs} GCs in ${r.allocation.frames / 1e6}M)`,
      `${Math.round(r.allocation.promClientBytesPerFrame * 1e6).toLocaleString('en-US')}`,
      '',
    ],
  ];
  // bench/metrics.ts states its targets as speed-ups (at least N times prom-client) and zero bytes.
  const budgets: Budget[] = [
    { what: 'labelled counter add, speed-up over prom-client', value: r.increment.speedup, limit: r.increment.target, atLeast: true, unit: 'x', pass: r.increment.pass },
    { what: 'render, speed-up over prom-client', value: r.render.speedup, limit: r.render.target, atLeast: true, unit: 'x', pass: r.render.pass },
    { what: `heap bytes allocated by ${r.allocation.frames / 1e6}M counted frames`, value: r.allocation.oursBytes, limit: 0, unit: 'bytes', pass: r.allocation.pass },
  ];
  const notes = ['targets as set by bench/metrics.ts (the metrics engine issue)'];
  return { part: 'metrics', title: 'Metrics engine vs prom-client', table, budgets, notes, figures: r };
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length)));
  rows.forEach((row, r) => {
    console.log('  ' + row.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd());
    if (r === 0) console.log('  ' + widths.map((w) => '-'.repeat(w)).join('  '));
  });
}

/** Formats a budget's figure the way the table shows it. */
export function formatFigure(value: number, unit: string): string {
  if (unit === 'x') return `${value.toFixed(value < 10 ? 3 : 1)}x`;
  if (unit === 'bytes' || unit === 'B') return `${Math.round(value)} ${unit}`;
  return `${value.toFixed(value < 10 ? 2 : 1)} ${unit}`;
}

function print(result: PartResult): void {
  console.log(`\n${result.title} [${result.part}]`);
  printTable(result.table);
  for (const more of result.moreTables ?? []) {
    console.log(`\n  ${more.title}`);
    printTable(more.table);
  }
  for (const note of result.notes) console.log(`  ${note}`);
  if (result.budgets.length > 0) {
    console.log('');
    printTable([
      ['budget', 'figure', 'limit', 'result'],
      ...result.budgets.map((b) => [b.what, formatFigure(b.value, b.unit), `${b.atLeast ? '>=' : '<='} ${formatFigure(b.limit, b.unit)}`, b.pass ? 'PASS' : 'FAIL']),
    ]);
  }
}

interface Saved {
  at: string;
  command: string;
  machine: Machine;
  result: PartResult;
}

// latest.json keeps the newest result of every part, so running one part updates only its entry.
function save(result: PartResult, at: Date, command: string, host: Machine): void {
  mkdirSync(RESULTS, { recursive: true });
  const entry: Saved = { at: at.toISOString(), command, machine: host, result };
  const stamp = at.toISOString().replace(/[:.]/g, '-');
  writeFileSync(join(RESULTS, `${result.part}-${stamp}.json`), JSON.stringify(entry, null, 2) + '\n');
  const latestPath = join(RESULTS, 'latest.json');
  let latest: Partial<Record<Part, Saved>> = {};
  try {
    latest = JSON.parse(readFileSync(latestPath, 'utf8'));
  } catch {
    // First run, or a file from an older layout: start over.
  }
  latest[result.part] = entry;
  writeFileSync(latestPath, JSON.stringify(latest, null, 2) + '\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const { parts, options } = parseArgs(argv);
  const command = ['npm run bench', ...(argv.length > 0 ? ['--', ...argv] : [])].join(' ');
  const host = machine();
  console.log(`${command}`);
  console.log(`${host.cpus} x ${host.cpuModel}, ${host.memoryGb} GB, Node ${host.node}, uWS ${host.uws}, load ${host.loadAverage}`);
  if (options.pwsBin !== PWS_BIN) console.log(`pws-server: ${options.pwsBin}`);
  if (options.cpuProf) console.log(`--cpu-prof: servers run under the profiler (profiles in ${options.profileDir}); figures are for finding causes, not for budgets`);
  const failed: string[] = [];
  for (const part of parts) {
    const at = new Date();
    let result: PartResult;
    try {
      result = await runPart(part, options);
    } catch (err) {
      console.error(`\n[${part}] failed: ${(err as Error).stack ?? err}`);
      failed.push(`${part} (error)`);
      continue;
    }
    print(result);
    save(result, at, command, host);
    for (const b of result.budgets) if (!b.pass) failed.push(`${part}: ${b.what}`);
  }
  console.log(`\nResults in bench/results/ (latest.json).`);
  if (failed.length > 0) {
    // Budgets are reported, not asserted: only a part that could not run fails the command.
    console.log(`Missed: ${failed.join('; ')}`);
    if (failed.some((f) => f.endsWith('(error)'))) process.exitCode = 1;
  } else {
    console.log('Every budget met.');
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
