// Real Redis for tests: a standalone `redis-server`, a master watched by Redis Sentinels, or a
// three-master Redis Cluster, on free loopback ports (Debian packages `redis-server` and
// `redis-tools`, installed by scripts/test-setup.sh).
// No persistence, one temp dir per instance; processes never outlive the test process (stop()
// kills them, and the exit hooks of ./services kill any still running).
import { execFile, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import {
  freePort,
  isCI,
  killChild,
  missingToolSkip,
  mkTemp,
  requireTool,
  rmTemp,
  sleep,
  spawnService,
  tail,
  track,
  type Spawned,
} from './services';

export { isCI };

// ------------------------------------------------------------------------ tools and skips

/**
 * For node:test's `skip` option: false when redis-server and redis-cli are installed; otherwise
 * a skip message saying how to install them. Under CI=true a missing tool throws (a failure).
 */
export function redisSkip(): string | false {
  return missingToolSkip('redis-server', 'redis-server') || missingToolSkip('redis-cli', 'redis-tools');
}

function redisServerBin(): string {
  return requireTool('redis-server', 'redis-server');
}

function redisCliBin(): string {
  return requireTool('redis-cli', 'redis-tools');
}

// ------------------------------------------------------------------------ temp dirs left behind

// stop() removes an instance's temp dir; these catch the ones of instances a failed test forgot.
const liveDirs = new Set<string>();
let dirHookInstalled = false;

function trackDir(dir: string): void {
  liveDirs.add(dir);
  if (dirHookInstalled) return;
  dirHookInstalled = true;
  process.on('exit', () => {
    for (const d of liveDirs) rmTemp(d);
  });
}

function dropDir(dir: string): void {
  liveDirs.delete(dir);
  rmTemp(dir);
}

// ------------------------------------------------------------------------ a minimal RESP client

type Reply = string | number | null | Error | Reply[];

/** Parses one RESP2 reply from buf at offset; undefined when incomplete. */
function parseReply(buf: Buffer, offset: number): { value: Reply; next: number } | undefined {
  const eol = buf.indexOf('\r\n', offset);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[offset]);
  const line = buf.toString('utf8', offset + 1, eol);
  const after = eol + 2;
  switch (type) {
    case '+':
      return { value: line, next: after };
    case '-':
      return { value: new Error(line), next: after };
    case ':':
      return { value: Number(line), next: after };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, next: after };
      if (buf.length < after + len + 2) return undefined;
      return { value: buf.toString('utf8', after, after + len), next: after + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next: after };
      const items: Reply[] = [];
      let at = after;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, at);
        if (!r) return undefined;
        items.push(r.value);
        at = r.next;
      }
      return { value: items, next: at };
    }
    default:
      throw new Error(`unexpected RESP reply type ${JSON.stringify(type)}`);
  }
}

/** Sends one command to 127.0.0.1:port over a fresh TCP connection and resolves with its reply. */
function respCommand(port: number, args: string[], timeoutMs = 2000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (err: Error | null, value?: Reply) => {
      if (done) return;
      done = true;
      sock.destroy();
      if (err) reject(err);
      else resolve(value as Reply);
    };
    sock.setTimeout(timeoutMs, () => finish(new Error(`no reply from 127.0.0.1:${port} within ${timeoutMs} ms`)));
    sock.once('error', (e) => finish(e));
    sock.once('close', () => finish(new Error(`127.0.0.1:${port} closed the connection`)));
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      try {
        const r = parseReply(buf, 0);
        if (r) finish(null, r.value);
      } catch (e) {
        finish(e as Error);
      }
    });
    let cmd = `*${args.length}\r\n`;
    for (const a of args) cmd += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
    sock.write(cmd);
  });
}

function exitedOf(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Polls PING until +PONG; fails early (with the log) when the process exits. */
async function waitPong(s: Spawned, port: number, name: string, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let spawnError: Error | undefined;
  s.child.once('error', (e) => (spawnError = e));
  let last = '';
  while (Date.now() < deadline) {
    if (spawnError) throw new Error(`${name} failed to start: ${spawnError.message}`);
    if (exitedOf(s.child)) {
      throw new Error(
        `${name} exited (code ${s.child.exitCode}, signal ${s.child.signalCode}) before answering PING:\n` +
          tail(s.logFile),
      );
    }
    try {
      const r = await respCommand(port, ['PING'], 1000);
      if (r === 'PONG' && !exitedOf(s.child)) return;
      last = `PING answered ${r instanceof Error ? r.message : JSON.stringify(r)}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`${name} did not answer PING on 127.0.0.1:${port} within ${timeoutMs} ms (${last}):\n${tail(s.logFile)}`);
}

/** SIGKILL, then wait for the exit. */
async function killHard(child: ChildProcess): Promise<void> {
  if (exitedOf(child)) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.ref(); // keep the event loop alive while we wait
  try {
    child.kill('SIGKILL');
  } catch {
    /* already gone */
  }
  await exited;
}

/** Runs `redis-cli -h 127.0.0.1 -p port args...`; resolves with its stdout, rejects on a non-zero exit. */
function runCli(port: number, args: string[], timeoutMs = 60000): Promise<string> {
  const bin = redisCliBin();
  const fullArgs = ['-h', '127.0.0.1', '-p', String(port), ...args];
  return new Promise((resolve, reject) => {
    const child = execFile(bin, fullArgs, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`redis-cli ${fullArgs.join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
      } else {
        resolve(stdout);
      }
    });
    track(child);
    child.ref(); // we await this one
  });
}

function isBindError(e: unknown): boolean {
  return /already in use|bind|listening socket/i.test(String((e as Error)?.message ?? e));
}

// ------------------------------------------------------------------------ standalone

export interface RedisOptions {
  /** Listen on this port instead of a free one. */
  port?: number;
  /** Extra redis-server arguments, e.g. ['--requirepass', 'secret']. */
  args?: string[];
}

export interface RedisInstance {
  port: number;
  /** redis://127.0.0.1:PORT */
  url: string;
  /** Temp dir: service.log (all runs) and one data dir per run. */
  dir: string;
  /** SIGTERM (SIGKILL after 5 s) and wait for the exit; removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit (the port then refuses connections); restart() brings it back. */
  kill(): Promise<void>;
  /** Stops the server if running, then starts it again on the same port with empty data. */
  restart(): Promise<void>;
  /** Runs `redis-cli -h 127.0.0.1 -p PORT args...`; resolves with its stdout (error replies too). */
  cli(...args: string[]): Promise<string>;
  /** redis-server's log so far (all runs). */
  log(): string;
}

function standaloneArgs(port: number, dataDir: string, extra: string[]): string[] {
  return [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--protected-mode', 'no',
    '--save', '',
    '--appendonly', 'no',
    '--dir', dataDir,
    '--daemonize', 'no',
    ...extra,
  ];
}

/** Starts a standalone `redis-server` on a free 127.0.0.1 port (or opts.port); waits until PING answers. */
export async function startRedis(opts: RedisOptions = {}): Promise<RedisInstance> {
  const bin = redisServerBin();
  const dir = mkTemp('pws-redis-');
  trackDir(dir);
  const extra = opts.args ?? [];
  let run = 0;

  /** One redis-server run on `port` with a fresh data dir. */
  const launch = async (port: number): Promise<Spawned> => {
    const dataDir = path.join(dir, `data-${++run}`);
    fs.mkdirSync(dataDir);
    const s = spawnService(bin, standaloneArgs(port, dataDir, extra), dir);
    try {
      await waitPong(s, port, 'redis-server');
      return s;
    } catch (e) {
      await killHard(s.child);
      throw e;
    }
  };

  let port = 0;
  let current: Spawned | undefined;
  try {
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3 && !current; attempt++) {
      port = opts.port ?? (await freePort());
      try {
        current = await launch(port);
      } catch (e) {
        lastErr = e;
        if (opts.port !== undefined || !isBindError(e)) break;
      }
    }
    if (!current) throw lastErr;
  } catch (e) {
    dropDir(dir);
    throw e;
  }

  let stopped = false;
  const logFile = path.join(dir, 'service.log');
  const instance: RedisInstance = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    log: () => tail(logFile, 20000),
    cli: (...args: string[]) => runCli(port, args),
    async kill() {
      if (current) await killHard(current.child);
    },
    async restart() {
      if (stopped) throw new Error('restart() after stop()');
      if (current) await killChild(current.child);
      current = undefined;
      // The port is ours: retry briefly in case the old socket is not released yet.
      let lastErr: unknown;
      for (let attempt = 0; attempt < 10; attempt++) {
        try {
          current = await launch(port);
          return;
        } catch (e) {
          lastErr = e;
          if (!isBindError(e)) break;
          await sleep(200);
        }
      }
      throw lastErr;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (current) await killChild(current.child);
      current = undefined;
      dropDir(dir);
    },
  };
  return instance;
}

// ------------------------------------------------------------------------ cluster

export interface RedisClusterInstance {
  /** Client ports of the three masters. */
  ports: number[];
  /** For createCluster({ rootNodes }): one entry per master, { url: 'redis://127.0.0.1:PORT' }. */
  rootNodes: Array<{ url: string }>;
  /** Temp dir: one sub-dir per node (nodes.conf, service.log). */
  dir: string;
  /** Stops every node and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Runs `redis-cli -h 127.0.0.1 -p port args...` (add '-c' to follow redirections); resolves with stdout. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** The log of the node on `port` so far. */
  log(port: number): string;
}

/** True when `port` can be bound on 127.0.0.1 right now. */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * `count` ports P such that P and its cluster bus port P+10000 are free on 127.0.0.1, and no
 * chosen port or bus port collides with another. Chosen from 20000-32767, below Linux's default
 * ephemeral range, so outgoing connections do not take them meanwhile.
 */
async function freeClusterPorts(count: number): Promise<number[]> {
  const taken = new Set<number>();
  const out: number[] = [];
  for (let tries = 0; out.length < count; tries++) {
    if (tries > 500) throw new Error('no free port pair (P, P+10000) found for the Redis Cluster');
    const p = 20000 + Math.floor(Math.random() * 12768);
    if (taken.has(p) || taken.has(p + 10000)) continue;
    if (!(await canBind(p)) || !(await canBind(p + 10000))) continue;
    out.push(p);
    taken.add(p).add(p + 10000);
  }
  return out;
}

function clusterArgs(port: number, nodeDir: string): string[] {
  return [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--protected-mode', 'no',
    '--cluster-enabled', 'yes',
    '--cluster-config-file', 'nodes.conf',
    '--cluster-node-timeout', '5000',
    '--save', '',
    '--appendonly', 'no',
    '--dir', nodeDir,
    '--daemonize', 'no',
  ];
}

/** Parses CLUSTER INFO's `key:value` lines. */
function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/**
 * Starts three cluster-enabled `redis-server` masters on free ports (each with its bus port
 * P+10000 free), joins them with `redis-cli --cluster create ... --cluster-replicas 0`, and waits
 * until CLUSTER INFO on every node says cluster_state:ok with all three nodes known.
 */
export async function startRedisCluster(): Promise<RedisClusterInstance> {
  const bin = redisServerBin();
  redisCliBin(); // fail early with the install hint
  const dir = mkTemp('pws-redis-cluster-');
  trackDir(dir);
  const nodes = new Map<number, Spawned>();
  const killAll = async () => {
    await Promise.all([...nodes.values()].map((s) => killChild(s.child)));
    nodes.clear();
  };

  try {
    // 1. Three masters, retried on fresh ports if one was taken meanwhile.
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3 && nodes.size === 0; attempt++) {
      const ports = await freeClusterPorts(3);
      const spawned: Spawned[] = [];
      for (const port of ports) {
        const nodeDir = path.join(dir, `node-${port}-${attempt}`);
        fs.mkdirSync(nodeDir);
        const s = spawnService(bin, clusterArgs(port, nodeDir), nodeDir);
        spawned.push(s);
        nodes.set(port, s);
      }
      try {
        await Promise.all(ports.map((p, i) => waitPong(spawned[i], p, `redis-server (cluster node ${p})`)));
      } catch (e) {
        lastErr = e;
        await killAll();
        if (!isBindError(e)) break;
      }
    }
    if (nodes.size === 0) throw lastErr;
    const ports = [...nodes.keys()];

    // 2. Join them and assign the 16384 slots.
    await runCli(ports[0], [
      '--cluster', 'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas', '0',
      '--cluster-yes',
    ], 120000);

    // 3. Every node sees a healthy cluster of three.
    const deadline = Date.now() + 60000;
    const last = new Map<number, string>();
    for (;;) {
      let allOk = true;
      for (const p of ports) {
        const s = nodes.get(p)!;
        if (exitedOf(s.child)) throw new Error(`cluster node ${p} exited:\n${tail(s.logFile)}`);
        try {
          const r = await respCommand(p, ['CLUSTER', 'INFO']);
          const text = typeof r === 'string' ? r : String(r instanceof Error ? r.message : JSON.stringify(r));
          last.set(p, text);
          const info = parseInfo(text);
          if (info.cluster_state !== 'ok' || info.cluster_known_nodes !== '3' || info.cluster_slots_assigned !== '16384') allOk = false;
        } catch (e) {
          last.set(p, (e as Error).message);
          allOk = false;
        }
      }
      if (allOk) break;
      if (Date.now() > deadline) {
        throw new Error(
          'Redis Cluster not ok within 60 s:\n' +
            ports.map((p) => `--- node ${p} CLUSTER INFO:\n${last.get(p)}\n--- log:\n${tail(nodes.get(p)!.logFile)}`).join('\n'),
        );
      }
      await sleep(100);
    }
  } catch (e) {
    await killAll();
    dropDir(dir);
    throw e;
  }

  const ports = [...nodes.keys()];
  let stopped = false;
  return {
    ports,
    rootNodes: ports.map((p) => ({ url: `redis://127.0.0.1:${p}` })),
    dir,
    cli: (port: number, ...args: string[]) => runCli(port, args),
    log: (port: number) => {
      const s = nodes.get(port);
      return s ? tail(s.logFile, 20000) : '';
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await killAll();
      dropDir(dir);
    },
  };
}

// ------------------------------------------------------------------------ sentinel

export interface RedisSentinelOptions {
  /** How many sentinels watch the master (default 1; the quorum is 1). */
  sentinels?: number;
  /** The name the sentinels give the master (default 'mymaster'). */
  name?: string;
  /** Replicas of the master, started before the sentinels (default 0); failover() needs one. */
  replicas?: number;
}

export interface RedisSentinelInstance {
  /** The master the sentinels watched at start (a standalone instance of startRedis()). */
  master: RedisInstance;
  /** Its replicas (`--replicaof` the master), in the order started. */
  replicas: RedisInstance[];
  /** The name of the master, for DB_REDIS_SENTINEL_NAME. */
  name: string;
  /** Client ports of the sentinels. */
  ports: number[];
  /** For DB_REDIS_SENTINELS: `127.0.0.1:P,127.0.0.1:Q`. */
  sentinels: string;
  /** Temp dir: one sub-dir per sentinel (sentinel.conf, which the sentinel rewrites, and service.log). */
  dir: string;
  /** The port of the master the first sentinel names now. */
  masterPort(): Promise<number>;
  /**
   * `SENTINEL FAILOVER` on the first sentinel (retried while it has no replica ready to promote);
   * resolves with the new master's port once the sentinel names it and it answers ROLE as master.
   */
  failover(): Promise<number>;
  /** Stops the sentinels, then the replicas and the master; removes the temp dirs. Idempotent. */
  stop(): Promise<void>;
  /** Runs `redis-cli -h 127.0.0.1 -p port args...` against a sentinel (or the master); resolves with stdout. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** The log of the sentinel on `port` so far. */
  log(port: number): string;
}

function sentinelConf(port: number, dir: string, name: string, masterPort: number): string {
  return [
    `port ${port}`,
    'bind 127.0.0.1',
    'protected-mode no',
    'daemonize no',
    `dir ${dir}`,
    // Addresses only, and the loopback one in everything a sentinel tells clients and its peers.
    'sentinel resolve-hostnames no',
    'sentinel announce-hostnames no',
    'sentinel announce-ip 127.0.0.1',
    `sentinel announce-port ${port}`,
    `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`,
    `sentinel down-after-milliseconds ${name} 5000`,
    `sentinel failover-timeout ${name} 60000`,
    '',
  ].join('\n');
}

/** Polls `SENTINEL get-master-addr-by-name` until it names the master; fails early when the sentinel exits. */
async function waitSentinel(s: Spawned, port: number, name: string, masterPort: number, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let spawnError: Error | undefined;
  s.child.once('error', (e) => (spawnError = e));
  let last = '';
  while (Date.now() < deadline) {
    if (spawnError) throw new Error(`redis sentinel failed to start: ${spawnError.message}`);
    if (exitedOf(s.child)) {
      throw new Error(`redis sentinel on ${port} exited (code ${s.child.exitCode}, signal ${s.child.signalCode}):\n${tail(s.logFile)}`);
    }
    try {
      const r = await respCommand(port, ['SENTINEL', 'get-master-addr-by-name', name], 1000);
      if (Array.isArray(r) && r[0] === '127.0.0.1' && r[1] === String(masterPort)) return;
      last = `get-master-addr-by-name answered ${r instanceof Error ? r.message : JSON.stringify(r)}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`redis sentinel on 127.0.0.1:${port} did not name master ${name} within ${timeoutMs} ms (${last}):\n${tail(s.logFile)}`);
}

/**
 * Starts a standalone master (startRedis), `replicas` replicas of it, and `sentinels` sentinels
 * (`redis-server sentinel.conf --sentinel`, each with its own writable config in a temp dir)
 * monitoring it as `name` with a quorum of 1, and waits until every sentinel answers `SENTINEL
 * get-master-addr-by-name` with the master's address. With more than one sentinel, also waits
 * until each has discovered the others.
 */
export async function startRedisSentinel(opts: RedisSentinelOptions = {}): Promise<RedisSentinelInstance> {
  const bin = redisServerBin();
  redisCliBin(); // fail early with the install hint
  const count = opts.sentinels ?? 1;
  const name = opts.name ?? 'mymaster';
  const master = await startRedis();
  const replicas: RedisInstance[] = [];
  const dir = mkTemp('pws-redis-sentinel-');
  trackDir(dir);
  const sentinels = new Map<number, Spawned>();
  const killAll = async () => {
    await Promise.all([...sentinels.values()].map((s) => killChild(s.child)));
    sentinels.clear();
  };
  const stopRedis = async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await master.stop();
  };

  /** One sentinel on a free port, retried on another port if that one was taken meanwhile. */
  const launch = async (): Promise<void> => {
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      const sentinelDir = path.join(dir, `sentinel-${port}`);
      fs.mkdirSync(sentinelDir);
      const conf = path.join(sentinelDir, 'sentinel.conf');
      fs.writeFileSync(conf, sentinelConf(port, sentinelDir, name, master.port));
      const s = spawnService(bin, [conf, '--sentinel'], sentinelDir);
      try {
        await waitSentinel(s, port, name, master.port);
        sentinels.set(port, s);
        return;
      } catch (e) {
        lastErr = e;
        await killHard(s.child);
        if (!isBindError(e)) break;
      }
    }
    throw lastErr;
  };

  try {
    // Replicas first and in sync, so the sentinels learn them from the master's first INFO.
    for (let i = 0; i < (opts.replicas ?? 0); i++) replicas.push(await startRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] }));
    if (replicas.length > 0) {
      const deadline = Date.now() + 30000;
      for (;;) {
        const info = await respCommand(master.port, ['INFO', 'replication']).catch((e: Error) => e);
        const online = typeof info === 'string' ? (info.match(/^slave\d+:.*state=online/gm) ?? []).length : 0;
        if (online === replicas.length) break;
        if (Date.now() > deadline) throw new Error(`replicas not in sync within 30 s:\n${typeof info === 'string' ? info : String(info)}`);
        await sleep(50);
      }
    }
    for (let i = 0; i < count; i++) await launch();
    if (count > 1) {
      // Sentinels find each other through hello messages on the master (every 2 s).
      const deadline = Date.now() + 30000;
      for (const port of sentinels.keys()) {
        for (;;) {
          const r = await respCommand(port, ['SENTINEL', 'sentinels', name]).catch((e: Error) => e);
          if (Array.isArray(r) && r.length === count - 1) break;
          if (Date.now() > deadline) throw new Error(`sentinel ${port} did not discover the other ${count - 1} within 30 s (${JSON.stringify(r)}):\n${tail(sentinels.get(port)!.logFile)}`);
          await sleep(100);
        }
      }
    }
  } catch (e) {
    await killAll();
    dropDir(dir);
    await stopRedis();
    throw e;
  }

  const ports = [...sentinels.keys()];
  const masterPort = async (): Promise<number> => {
    const r = await respCommand(ports[0], ['SENTINEL', 'get-master-addr-by-name', name]);
    if (!Array.isArray(r)) throw new Error(`get-master-addr-by-name answered ${JSON.stringify(r)}`);
    return Number(r[1]);
  };
  let stopped = false;
  return {
    master,
    name,
    ports,
    sentinels: ports.map((p) => `127.0.0.1:${p}`).join(','),
    dir,
    replicas,
    masterPort,
    async failover() {
      const before = await masterPort();
      const deadline = Date.now() + 60000;
      let last = '';
      for (;;) {
        const r = await respCommand(ports[0], ['SENTINEL', 'failover', name]).catch((e: Error) => e);
        if (r === 'OK') break;
        last = r instanceof Error ? r.message : JSON.stringify(r);
        // NOGOODSLAVE: no replica the sentinel deems fit yet; INPROGRESS: one is under way.
        if (!/NOGOODSLAVE|INPROG/.test(last) || Date.now() > deadline) throw new Error(`SENTINEL FAILOVER ${name} answered ${last}:\n${tail(sentinels.get(ports[0])!.logFile)}`);
        await sleep(200);
      }
      for (;;) {
        const now = await masterPort();
        if (now !== before) {
          const role = await respCommand(now, ['ROLE']).catch((e: Error) => e);
          if (Array.isArray(role) && role[0] === 'master') return now;
          last = `ROLE on ${now}: ${JSON.stringify(role)}`;
        }
        if (Date.now() > deadline) throw new Error(`no new master within 60 s (${last}):\n${tail(sentinels.get(ports[0])!.logFile)}`);
        await sleep(100);
      }
    },
    cli: (port: number, ...args: string[]) => runCli(port, args),
    log: (port: number) => {
      const s = sentinels.get(port);
      return s ? tail(s.logFile, 20000) : '';
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await killAll();
      dropDir(dir);
      await stopRedis();
    },
  };
}
