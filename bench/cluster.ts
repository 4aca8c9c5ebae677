// Cluster: pws-server nodes sharing one Redis (ADAPTER_DRIVER=redis), against one node. Three
// runs, on a redis-server this part starts on a free loopback port (no persistence) and stops at
// the end; each run has its own key prefix, and its nodes are stopped before the next one starts.
//
// 1. Redis commands per published event. Three nodes whose heartbeats are moved out of the way
//    (ADAPTER_NODE_TIMEOUT of an hour: each node beats once at start, then every 15 minutes), and
//    subscribers added layout by layout: one socket on node 2 (none on node 1, which takes the REST
//    calls), one on node 1, one on node 3, then --sockets more over the three. After each layout,
//    110 events (10 requests of 10, then 10 requests of one) go to node 1, and every command Redis
//    counted meanwhile (INFO commandstats before and after; it also counts commands that scripts
//    run; the runner's own INFO left out) is divided by the events.
// 2. CPU per million deliveries. --sockets sockets on one channel, on one pws-server (local
//    adapter) and spread over --cluster-nodes nodes on Redis (socket i on node i mod n); events go
//    to node 1's REST API. Rounds take turns as in the fan-out part, batched then single. The
//    cluster's figure is the nodes' CPU together (utime + stime from /proc/<pid>/stat, event phase
//    only) per million deliveries, against the single node's; redis-server's CPU is shown beside it.
// 3. Capacity. --capacity-nodes nodes holding --capacity sockets each (max: as many as each
//    process's open-file limit allows), one client process per node, --capacity-events events to
//    node 1, every delivery counted on every node.
//
// Runs 2 and 3 keep the default heartbeat (every 2.5 s per node); the commands Redis counted over
// their event phases are shown too, heartbeats included.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createClient } from 'redis';
import type { AppState } from '../src/apps/app-state';
import { Keys } from '../src/cluster/keys';
import { APP, BATCH, CHANNEL, contenderSpecs, pwsSender } from './fanout';
import {
  accepts,
  CLK_TCK,
  cpuTicks,
  freePort,
  hardOpenFileLimit,
  openFiles,
  processOpenFileLimit,
  residentMemory,
  sleep,
  startClient,
  startServer,
  track,
  type ClientProcess,
  type ServerProcess,
  type ServerSpec,
} from './proc';
import type { BenchOptions, Budget, PartResult } from './run';

const CPU_LIMIT = 1.3;
// Run 1: events per layout, as BATCHED requests of BATCH and then SINGLE requests of one.
const BATCHED = 100;
const SINGLE = 10;
// Heartbeats out of run 1's windows: nodes beat every quarter of this (15 minutes).
const NODE_TIMEOUT_HOUR = String(3_600_000);
// Open files a process keeps free beyond those it holds once started: the REST connection, a
// Redis reconnect, a scrape.
const FD_MARGIN = 64;

/** The redis-server of this part. */
interface Redis {
  pid: number;
  url: string;
  version: string;
  /** Calls per command since start (INFO commandstats), without the runner's own commands. */
  commandStats(): Promise<Map<string, number>>;
  /** Connections subscribed to a sharded pub/sub channel (PUBSUB SHARDNUMSUB): the nodes listening. */
  listeners(channel: string): Promise<number>;
  stop(): Promise<void>;
}

async function startRedis(bin: string): Promise<Redis> {
  let version: string;
  try {
    version = /v=(\d+\.\d+\.\d+)/.exec(execFileSync(bin, ['--version'], { encoding: 'utf8' }))?.[1] ?? 'unknown';
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message;
    throw new Error(`${bin}: ${why}. The cluster part needs redis-server 7+: apt-get install redis-server (Debian, Ubuntu), or --redis-server <path>`);
  }
  if (!(Number(version.split('.')[0]) >= 7)) throw new Error(`${bin} is Redis ${version}: the cluster needs Redis 7+ (sharded pub/sub)`);
  const port = await freePort();
  // --save '' and --appendonly no: nothing is written to disk, not even at shutdown.
  const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: tmpdir(),
  });
  track(child);
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-4096);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exited = false;
  const exit = once(child, 'exit').then(() => {
    exited = true;
  });
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (exited) throw new Error(`redis-server exited before listening on ${port}:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not listen on ${port} within 10 s:\n${output}`);
    }
    await sleep(50);
  }
  const url = `redis://127.0.0.1:${port}`;
  const client = createClient({ url, socket: { reconnectStrategy: false } });
  client.on('error', () => undefined);
  await client.connect();
  return {
    pid: child.pid!,
    url,
    version,
    async commandStats() {
      const text = String(await client.sendCommand(['INFO', 'commandstats']));
      const calls = new Map<string, number>();
      for (const match of text.matchAll(/^cmdstat_(\S+?):calls=(\d+)/gm)) calls.set(match[1], Number(match[2]));
      // The runner's own: these INFO calls and the PUBSUB SHARDNUMSUB of listeners().
      calls.delete('info');
      calls.delete('pubsub|shardnumsub');
      return calls;
    },
    async listeners(channel) {
      const reply = (await client.sendCommand(['PUBSUB', 'SHARDNUMSUB', channel])) as unknown[];
      return Number(reply[1]);
    },
    async stop() {
      client.destroy();
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exit;
      clearTimeout(timer);
    },
  };
}

/** Commands counted between two INFO commandstats, by name (only those called). */
function commandsBetween(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, calls] of after) {
    const n = calls - (before.get(name) ?? 0);
    if (n > 0) out[name] = n;
  }
  return out;
}

/** The sharded pub/sub channel the nodes use for the bench channel (src/cluster/keys.ts). */
function redisChannel(prefix: string): string {
  return new Keys(prefix).channel({ config: { id: APP.id } } as AppState, CHANNEL);
}

function wsUrl(server: ServerProcess): string {
  return `ws://127.0.0.1:${server.port}/app/${APP.key}?protocol=7&client=bench&version=1`;
}

/** `count` pws-server nodes on the part's Redis, as the fan-out part's metrics-on server otherwise. */
function nodeSpecs(options: BenchOptions, fds: number, redis: Redis, prefix: string, count: number, env: Record<string, string> = {}): ServerSpec[] {
  const base = contenderSpecs(options, fds, 'cluster').on;
  return Array.from({ length: count }, (_, i) => ({
    ...base,
    name: `node ${i + 1}`,
    env: { ...base.env, ADAPTER_DRIVER: 'redis', REDIS_URL: redis.url, DB_REDIS_KEY_PREFIX: prefix, ...env },
  }));
}

// One after the other: freePort hands out a port that the server binds a moment later.
async function startAll(specs: ServerSpec[], into: ServerProcess[]): Promise<void> {
  for (const spec of specs) into.push(await startServer(spec));
}

// Warnings and errors the nodes logged while measured (before their shutdown), for the notes.
const logged: string[] = [];

async function stopAll(clients: ClientProcess[], servers: ServerProcess[]): Promise<void> {
  for (const s of servers) {
    for (const line of s.output().split('\n')) if (/ (warn|error) /.test(line)) logged.push(`${s.name}: ${line.trim()}`);
  }
  for (const c of clients) await c.stop();
  for (const s of servers) await s.stop();
}

const sum = (values: number[]): number => values.reduce((s, v) => s + v, 0);

/** What Redis counted over one window of published events. */
export interface CommandsRow {
  run: string;
  subscribers: number;
  /** Nodes subscribed to the channel's Redis channel (PUBSUB SHARDNUMSUB). */
  nodesListening: number;
  nodes: number;
  events: number;
  /** Every command counted in the window, by name. */
  byCommand: Record<string, number>;
  commands: number;
  spublish: number;
  /** Heartbeats in the window (one SET of the node's heartbeat key each). */
  heartbeats: number;
  /** PINGs of idle connections (node-redis pingInterval): they come with time, not with events, and are not in commandsPerEvent. */
  pings: number;
  /** False when the window holds the default heartbeats: then not every command is the publish path's. */
  heartbeatFree: boolean;
  commandsPerEvent: number;
}

function commandsRow(row: Omit<CommandsRow, 'commands' | 'spublish' | 'commandsPerEvent' | 'heartbeats' | 'pings'>): CommandsRow {
  const commands = sum(Object.values(row.byCommand));
  const pings = row.byCommand.ping ?? 0;
  return { ...row, commands, spublish: row.byCommand.spublish ?? 0, heartbeats: row.byCommand.set ?? 0, pings, commandsPerEvent: (commands - pings) / row.events };
}

// ------------------------------------------------------------------ run 1: commands per event

async function commandsRun(options: BenchOptions, redis: Redis): Promise<CommandsRow[]> {
  const prefix = `bench-commands-${process.pid}`;
  const fds = options.sockets + 1024;
  const servers: ServerProcess[] = [];
  const clients: ClientProcess[] = [];
  try {
    await startAll(nodeSpecs(options, fds, redis, prefix, 3, { ADAPTER_NODE_TIMEOUT: NODE_TIMEOUT_HOUR }), servers);
    const client = startClient(fds);
    clients.push(client);
    const send = pwsSender(servers[0].port);
    const [n1, n2, n3] = servers.map(wsUrl);
    const layouts = [
      { what: '1 on node 2, none on node 1 (REST)', urls: [n2], count: 1 },
      { what: '+1 on node 1', urls: [n1], count: 1 },
      { what: '+1 on node 3', urls: [n3], count: 1 },
      { what: `+${options.sockets.toLocaleString('en-US')} over the 3 nodes`, urls: [n1, n2, n3], count: options.sockets },
    ];
    const rows: CommandsRow[] = [];
    let subscribers = 0;
    for (const layout of layouts) {
      await client.open(layout.urls, layout.count, CHANNEL);
      subscribers += layout.count;
      const events = BATCHED + SINGLE;
      const nodesListening = await redis.listeners(redisChannel(prefix));
      const before = await redis.commandStats();
      client.expect(subscribers * events);
      await send(BATCHED, BATCH);
      await send(SINGLE, 1);
      // Every layout has a subscriber on another node than node 1: once all deliveries are in,
      // Redis has run every SPUBLISH.
      await client.delivered(options.timeoutMs);
      await client.verify();
      const byCommand = commandsBetween(before, await redis.commandStats());
      rows.push(commandsRow({ run: layout.what, subscribers, nodesListening, nodes: servers.length, events, byCommand, heartbeatFree: true }));
      options.log(`cluster commands: ${subscribers} subscribers on ${nodesListening} nodes, ${events} events: ${sum(Object.values(byCommand))} commands`);
    }
    return rows;
  } finally {
    await stopAll(clients, servers);
  }
}

// ------------------------------------------------------------------ run 2: CPU against one node

/** One node, or the cluster, with its client and how events reach it. */
interface Setup {
  key: 'single' | 'cluster';
  name: string;
  servers: ServerProcess[];
  /** Sockets on each server. */
  sockets: number[];
  client: ClientProcess;
  send(events: number, batch: number): Promise<void>;
}

/** One measured round: M events to the setup's sockets. */
interface Round {
  /** CPU ticks of each server. */
  ticks: number[];
  redisTicks: number;
  ms: number;
  events: number;
}

/** A setup's figures for one pass. */
export interface CpuFigures {
  setup: string;
  rounds: number;
  deliveries: number;
  cpuSeconds: number;
  /** Server CPU seconds (all nodes together) per million deliveries. */
  cpuPerMillion: number;
  cpuPerMillionRange: [number, number];
  deliveriesPerSecond: number;
  ratioToSingle: number;
}

/** One pass of run 2. */
export interface CpuPass {
  pass: 'batched' | 'single';
  batch: number;
  single: CpuFigures;
  cluster: CpuFigures;
  /** Each node's CPU per million of its own deliveries. */
  nodes: Array<{ node: string; sockets: number; cpuPerMillion: number; cpuPerMillionRange: [number, number] }>;
  /** redis-server's CPU per million deliveries of the cluster rounds. */
  redisCpuPerMillion: number;
  /** The nodes and redis-server together, against the single node. */
  withRedisRatioToSingle: number;
}

export interface CpuResult {
  sockets: number;
  nodes: number;
  events: number;
  passes: CpuPass[];
  commands: CommandsRow;
}

async function round(s: Setup, redisPid: number, events: number, batch: number, timeoutMs: number): Promise<Round> {
  s.client.expect(sum(s.sockets) * events);
  const start = performance.now();
  const before = s.servers.map((p) => cpuTicks(p.pid));
  const redisBefore = cpuTicks(redisPid);
  await s.send(events, batch);
  try {
    await s.client.delivered(timeoutMs);
  } catch (err) {
    throw new Error(`${s.name}, ${events} events in requests of ${batch}: ${(err as Error).message}`);
  }
  const ticks = s.servers.map((p, i) => cpuTicks(p.pid) - before[i]);
  const redisTicks = cpuTicks(redisPid) - redisBefore;
  const ms = performance.now() - start;
  await s.client.verify();
  return { ticks, redisTicks, ms, events };
}

function cpuFigures(s: Setup, rounds: Round[]): Omit<CpuFigures, 'ratioToSingle'> {
  const ticks = sum(rounds.map((r) => sum(r.ticks)));
  const deliveries = sum(rounds.map((r) => r.events)) * sum(s.sockets);
  const perRound = rounds.map((r) => sum(r.ticks) / CLK_TCK / ((r.events * sum(s.sockets)) / 1e6));
  return {
    setup: s.name,
    rounds: rounds.length,
    deliveries,
    cpuSeconds: ticks / CLK_TCK,
    cpuPerMillion: ticks / CLK_TCK / (deliveries / 1e6),
    cpuPerMillionRange: [Math.min(...perRound), Math.max(...perRound)],
    deliveriesPerSecond: deliveries / (sum(rounds.map((r) => r.ms)) / 1000),
  };
}

async function cpuRun(options: BenchOptions, redis: Redis): Promise<CpuResult> {
  const { sockets, events } = options;
  const nodes = Math.max(1, Math.min(options.clusterNodes, sockets));
  const prefix = `bench-cpu-${process.pid}`;
  const fds = sockets + 1024;
  const servers: ServerProcess[] = [];
  const clients: ClientProcess[] = [];
  try {
    const single = await startServer({ ...contenderSpecs(options, fds, 'cluster').on, name: '1 node, local adapter' });
    servers.push(single);
    const clusterServers: ServerProcess[] = [];
    await startAll(nodeSpecs(options, fds, redis, prefix, nodes), clusterServers);
    servers.push(...clusterServers);
    const setups: Setup[] = [
      { key: 'single', name: single.name, servers: [single], sockets: [sockets], client: startClient(fds), send: pwsSender(single.port) },
      {
        key: 'cluster',
        name: `${nodes} nodes on Redis`,
        servers: clusterServers,
        // Socket i goes to node i mod n.
        sockets: clusterServers.map((_, k) => Math.floor(sockets / nodes) + (k < sockets % nodes ? 1 : 0)),
        client: startClient(fds),
        send: pwsSender(clusterServers[0].port),
      },
    ];
    for (const s of setups) {
      clients.push(s.client);
      const ms = await s.client.open(s.servers.map(wsUrl), sockets, CHANNEL);
      options.log(`cluster: ${sockets} sockets subscribed on ${s.name} in ${(ms / 1000).toFixed(1)} s`);
    }
    const cluster = setups[1];

    const nodesListening = await redis.listeners(redisChannel(prefix));
    const statsBefore = await redis.commandStats();
    let clusterEvents = 0;
    const passes: CpuPass[] = [];
    for (const [pass, batch] of [['batched', BATCH], ['single', 1]] as const) {
      // As in the fan-out part: a warm-up round each, which also sizes the pass.
      let cheapest = Infinity;
      for (const s of setups) {
        const warm = await round(s, redis.pid, events, batch, options.timeoutMs);
        if (s.key === 'cluster') clusterEvents += events;
        cheapest = Math.min(cheapest, Math.max(1, sum(warm.ticks)) / CLK_TCK);
      }
      const rounds = Math.max(options.minRounds, Math.min(options.maxRounds, Math.ceil(options.minCpu / cheapest)));
      options.log(`cluster ${pass}: ${rounds} rounds of ${events} events x ${sockets} sockets per setup`);
      const measured = new Map<Setup['key'], Round[]>(setups.map((s) => [s.key, []]));
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < setups.length; i++) {
          const s = setups[(r + i) % setups.length];
          measured.get(s.key)!.push(await round(s, redis.pid, events, batch, options.timeoutMs));
          if (s.key === 'cluster') clusterEvents += events;
        }
      }
      const one = { ...cpuFigures(setups[0], measured.get('single')!), ratioToSingle: 1 };
      const clusterRounds = measured.get('cluster')!;
      const all = cpuFigures(cluster, clusterRounds);
      const redisCpuPerMillion = sum(clusterRounds.map((r) => r.redisTicks)) / CLK_TCK / (all.deliveries / 1e6);
      passes.push({
        pass,
        batch,
        single: one,
        cluster: { ...all, ratioToSingle: all.cpuPerMillion / one.cpuPerMillion },
        nodes: cluster.servers.map((server, k) => {
          const perRound = clusterRounds.map((r) => r.ticks[k] / CLK_TCK / ((r.events * cluster.sockets[k]) / 1e6));
          const ticks = sum(clusterRounds.map((r) => r.ticks[k]));
          return {
            node: server.name,
            sockets: cluster.sockets[k],
            cpuPerMillion: ticks / CLK_TCK / ((sum(clusterRounds.map((r) => r.events)) * cluster.sockets[k]) / 1e6),
            cpuPerMillionRange: [Math.min(...perRound), Math.max(...perRound)] as [number, number],
          };
        }),
        redisCpuPerMillion,
        withRedisRatioToSingle: (all.cpuPerMillion + redisCpuPerMillion) / one.cpuPerMillion,
      });
    }
    const byCommand = commandsBetween(statsBefore, await redis.commandStats());
    const commands = commandsRow({
      run: `CPU run: ${nodes} nodes, default heartbeats`,
      subscribers: sockets,
      nodesListening,
      nodes,
      events: clusterEvents,
      byCommand,
      heartbeatFree: false,
    });
    return { sockets, nodes, events, passes, commands };
  } finally {
    await stopAll(clients, servers);
  }
}

// ------------------------------------------------------------------ run 3: capacity

export interface CapacityResult {
  nodes: number;
  /** What was asked per node (null: max). */
  requestedPerNode: number | null;
  socketsPerNode: number;
  sockets: number;
  /** How the per-node figure was found: the limits seen. */
  limits: { hardOpenFiles: number; nodeOpenFiles: number; nodeFdsAtStart: number; clientFdsAtStart: number; ephemeralPorts: number };
  openMs: number;
  events: number;
  deliveries: number;
  deliveriesCounted: number;
  eventPhaseMs: number;
  /** RSS is read 1 s after the connect burst: garbage of the burst included, not an idle-memory figure. */
  perNode: Array<{ node: string; sockets: number; rssBytes: number; deliveries: number; cpuPerMillion: number }>;
  nodesCpuPerMillion: number;
  redis: { rssBytes: number; cpuPerMillion: number };
  commands: CommandsRow;
}

function ephemeralPorts(): number {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return high - low + 1;
  } catch {
    return Infinity;
  }
}

async function capacityRun(options: BenchOptions, redis: Redis): Promise<CapacityResult> {
  const nodes = options.capacityNodes;
  const prefix = `bench-capacity-${process.pid}`;
  const hard = hardOpenFileLimit();
  // Each node and its client may raise their soft limit as far as the hard limit.
  const fds = Number.isFinite(options.capacity) ? Math.min(hard, options.capacity + 1024) : hard;
  const servers: ServerProcess[] = [];
  const clients: ClientProcess[] = [];
  try {
    await startAll(nodeSpecs(options, fds, redis, prefix, nodes), servers);
    for (const server of servers) {
      const client = startClient(fds);
      clients.push(client);
      // No sockets yet: resolves once the client process is up.
      await client.open(wsUrl(server), 0, CHANNEL);
    }
    // What each process can still open: its limit less what it holds now, and one port range per node.
    const free = [...servers, ...clients].map((p) => processOpenFileLimit(p.pid) - openFiles(p.pid) - FD_MARGIN);
    const ports = ephemeralPorts();
    const allowed = Math.min(...free, ports - FD_MARGIN);
    const perNode = Number.isFinite(options.capacity) ? Math.min(options.capacity, allowed) : allowed;
    if (perNode < options.capacity && Number.isFinite(options.capacity)) options.log(`cluster capacity: ${options.capacity} sockets per node asked, the limits allow ${perNode}`);
    const limits = {
      hardOpenFiles: hard,
      nodeOpenFiles: processOpenFileLimit(servers[0].pid),
      nodeFdsAtStart: Math.max(...servers.map((s) => openFiles(s.pid))),
      clientFdsAtStart: Math.max(...clients.map((c) => openFiles(c.pid))),
      ephemeralPorts: ports,
    };

    const openStart = performance.now();
    await Promise.all(clients.map((c, k) => c.open(wsUrl(servers[k]), perNode, CHANNEL)));
    const openMs = performance.now() - openStart;
    const sockets = perNode * nodes;
    options.log(`cluster capacity: ${sockets} sockets subscribed on ${nodes} nodes in ${(openMs / 1000).toFixed(1)} s`);
    await sleep(1000);
    const rss = servers.map((s) => residentMemory(s.pid).rss);
    const redisRss = residentMemory(redis.pid).rss;

    const events = options.capacityEvents;
    const nodesListening = await redis.listeners(redisChannel(prefix));
    const statsBefore = await redis.commandStats();
    for (const c of clients) c.expect(perNode * events);
    const start = performance.now();
    const before = servers.map((s) => cpuTicks(s.pid));
    const redisBefore = cpuTicks(redis.pid);
    await pwsSender(servers[0].port)(events, BATCH);
    try {
      await Promise.all(clients.map((c) => c.delivered(options.timeoutMs)));
    } catch (err) {
      throw new Error(`capacity run, ${sockets} sockets on ${nodes} nodes: ${(err as Error).message}`);
    }
    const ticks = servers.map((s, k) => cpuTicks(s.pid) - before[k]);
    const redisTicks = cpuTicks(redis.pid) - redisBefore;
    const eventPhaseMs = performance.now() - start;
    for (const c of clients) await c.verify();
    const byCommand = commandsBetween(statsBefore, await redis.commandStats());
    const deliveries = sockets * events;
    const perMillion = (t: number, d: number): number => t / CLK_TCK / (d / 1e6);
    return {
      nodes,
      requestedPerNode: Number.isFinite(options.capacity) ? options.capacity : null,
      socketsPerNode: perNode,
      sockets,
      limits,
      openMs,
      events,
      deliveries,
      // verify() has checked that each client counted exactly its share: no more, no fewer.
      deliveriesCounted: deliveries,
      eventPhaseMs,
      perNode: servers.map((s, k) => ({
        node: s.name,
        sockets: perNode,
        rssBytes: rss[k],
        deliveries: perNode * events,
        cpuPerMillion: perMillion(ticks[k], perNode * events),
      })),
      nodesCpuPerMillion: perMillion(sum(ticks), deliveries),
      redis: { rssBytes: redisRss, cpuPerMillion: perMillion(redisTicks, deliveries) },
      commands: commandsRow({ run: `capacity run: ${nodes} nodes, default heartbeats`, subscribers: sockets, nodesListening, nodes, events, byCommand, heartbeatFree: false }),
    };
  } finally {
    await stopAll(clients, servers);
  }
}

// ------------------------------------------------------------------ the part

export interface ClusterResult {
  redis: { version: string };
  commands: CommandsRow[];
  cpu: CpuResult;
  capacity: CapacityResult;
  /** Warning and error lines the nodes logged. */
  logged: string[];
}

/** Starts Redis, runs the three runs on it, and returns the tables and budgets. */
export async function run(options: BenchOptions): Promise<PartResult<ClusterResult>> {
  logged.length = 0;
  const redis = await startRedis(options.redisServer);
  try {
    options.log(`cluster: redis-server ${redis.version} on ${redis.url}`);
    const commands = await commandsRun(options, redis);
    const cpu = await cpuRun(options, redis);
    const capacity = await capacityRun(options, redis);
    return report({ redis: { version: redis.version }, commands, cpu, capacity, logged: [...logged] });
  } finally {
    await redis.stop();
  }
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const range = (r: [number, number]): string => `${r[0].toFixed(3)}–${r[1].toFixed(3)}`;

function report(result: ClusterResult): PartResult<ClusterResult> {
  const { cpu, capacity } = result;
  const table: string[][] = [['pass', 'setup', 'CPU s / 1M deliveries', 'per-round range', 'deliveries/s', 'vs 1 node']];
  for (const p of cpu.passes) {
    const pass = `${p.pass} (${p.batch}/request)`;
    for (const f of [p.single, p.cluster]) {
      table.push([pass, f.setup, f.cpuPerMillion.toFixed(3), range(f.cpuPerMillionRange), int(f.deliveriesPerSecond), `${f.ratioToSingle.toFixed(3)}x`]);
    }
    for (const n of p.nodes) {
      table.push([pass, `  ${n.node}${n.node === 'node 1' ? ' (REST calls)' : ' (via Redis)'}, ${int(n.sockets)} sockets`, n.cpuPerMillion.toFixed(3), range(n.cpuPerMillionRange), '', '']);
    }
    table.push([pass, '  redis-server', p.redisCpuPerMillion.toFixed(3), '', '', '']);
    table.push([pass, `${cpu.nodes} nodes + redis-server`, (p.cluster.cpuPerMillion + p.redisCpuPerMillion).toFixed(3), '', '', `${p.withRedisRatioToSingle.toFixed(3)}x`]);
  }

  const rows = [...result.commands, cpu.commands, capacity.commands];
  const commandsTable: string[][] = [['window', 'subscribers', 'nodes listening', 'events', 'SPUBLISH', 'other commands', 'commands / event']];
  for (const r of rows) {
    const other = r.commands - r.spublish;
    commandsTable.push([r.run, int(r.subscribers), `${r.nodesListening} of ${r.nodes}`, int(r.events), int(r.spublish), other === 0 ? '0' : `${int(other)} (${r.heartbeats} heartbeats, ${r.pings} idle pings)`, r.commandsPerEvent.toFixed(3)]);
  }

  const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
  const capacityTable: string[][] = [['process', 'sockets', 'RSS, MB', 'deliveries counted', 'CPU s / 1M deliveries']];
  for (const n of capacity.perNode) {
    capacityTable.push([
      n.node + (n.node === 'node 1' ? ' (REST calls)' : ''),
      int(n.sockets),
      mb(n.rssBytes),
      `${int(n.deliveries)} of ${int(n.deliveries)}`,
      n.cpuPerMillion.toFixed(3),
    ]);
  }
  capacityTable.push([
    `all ${capacity.nodes} nodes`,
    int(capacity.sockets),
    mb(sum(capacity.perNode.map((n) => n.rssBytes))),
    `${int(capacity.deliveriesCounted)} of ${int(capacity.deliveries)}`,
    capacity.nodesCpuPerMillion.toFixed(3),
  ]);
  capacityTable.push(['redis-server', '', mb(capacity.redis.rssBytes), '', capacity.redis.cpuPerMillion.toFixed(3)]);

  const batched = cpu.passes.find((p) => p.pass === 'batched')!;
  const single = cpu.passes.find((p) => p.pass === 'single')!;
  const publishPath = result.commands.filter((r) => r.heartbeatFree);
  const worst = Math.max(...publishPath.map((r) => r.commandsPerEvent));
  const budgets: Budget[] = [
    {
      what: `cluster CPU per delivery, batched, ${cpu.nodes} nodes vs 1 node`,
      value: batched.cluster.ratioToSingle,
      limit: CPU_LIMIT,
      unit: 'x',
      pass: batched.cluster.ratioToSingle <= CPU_LIMIT,
    },
    { what: `cluster CPU per delivery, single, ${cpu.nodes} nodes vs 1 node`, value: single.cluster.ratioToSingle, limit: CPU_LIMIT, unit: 'x', pass: single.cluster.ratioToSingle <= CPU_LIMIT },
    { what: `Redis commands per published event (worst of ${publishPath.length} layouts)`, value: worst, limit: 1, unit: 'commands', pass: worst <= 1 },
  ];
  const l = capacity.limits;
  const otherCommands = rows
    .filter((r) => r.commands > r.spublish)
    .map((r) => `  ${r.run}: ${Object.entries(r.byCommand).filter(([name]) => name !== 'spublish').map(([name, n]) => `${name} ${n}`).join(', ')}`);
  const notes = [
    `redis-server ${result.redis.version}. CPU run: ${int(cpu.sockets)} sockets on one channel, ${cpu.events} events per round, events to node 1's REST API;`,
    '  server CPU (all nodes together) over the event phase only; node rows per million of that node\'s own deliveries',
    `Commands: INFO commandstats before and after each window (commands run by scripts included); the ${publishPath.length} layout windows`,
    '  run with ADAPTER_NODE_TIMEOUT=1 h, so no heartbeat falls in them and every command counted there was caused by the events;',
    '  the CPU and capacity windows keep the default heartbeats (a beat every 2.5 s per node, one SET each, counted as "heartbeats");',
    '  idle connections PING every second (a half-open connection is found by its silence): counted, not per event',
    ...(otherCommands.length > 0 ? ['Commands other than SPUBLISH, by name:', ...otherCommands] : []),
    `Capacity: ${capacity.nodes} nodes x ${int(capacity.socketsPerNode)} sockets${capacity.requestedPerNode === null ? ' (max)' : ''}, one client process per node, subscribed in ${(capacity.openMs / 1000).toFixed(1)} s` +
      ` (${int(capacity.sockets / (capacity.openMs / 1000))}/s); ${capacity.events} events in requests of ${BATCH} to node 1, delivered in ${(capacity.eventPhaseMs / 1000).toFixed(2)} s` +
      ` (${int(capacity.deliveries / (capacity.eventPhaseMs / 1000))} deliveries/s)`,
    '  RSS read 1 s after the connect burst (not an idle-memory figure: the connections part measures that)',
    `  limits: open files ${int(l.nodeOpenFiles)} per process (hard ${int(l.hardOpenFiles)}), ${l.nodeFdsAtStart} held by a node at start, ${l.clientFdsAtStart} by a client,` +
      ` ${FD_MARGIN} kept free; ${int(l.ephemeralPorts)} ephemeral ports per node`,
  ];
  if (result.logged.length > 0) notes.push(`The nodes logged ${result.logged.length} warnings or errors:`, ...result.logged.slice(0, 10).map((line) => `  ${line}`));
  return {
    part: 'cluster',
    title: 'Cluster on Redis',
    table,
    moreTables: [
      { title: 'Redis commands per published event', table: commandsTable },
      { title: `Capacity: ${int(capacity.sockets)} sockets on ${capacity.nodes} nodes, every delivery counted`, table: capacityTable },
    ],
    budgets,
    notes,
    figures: result,
  };
}
