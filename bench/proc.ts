// The processes a benchmark measures: starting pws-server, the bare-uWS reference and the
// client as children, reading their CPU and memory from /proc, and stopping them. A child's
// /proc/<pid>/stat counts that process alone, so the figures never include the runner or the client.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { loaded } from '../src/uws';

/** The repository root (dist/bench/ → ../..). */
export const ROOT = resolve(__dirname, '..', '..');

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (normally 100: 10 ms resolution). */
export const CLK_TCK = clockTicks();

function clockTicks(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    if (Number.isInteger(n) && n > 0) return n;
  } catch {
    // getconf missing: Linux has used 100 on every mainstream architecture for decades.
  }
  return 100;
}

/** utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2, the command name, may hold spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so field n is fields[n - 3].
  return Number(fields[11]) + Number(fields[12]);
}

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  return cpuTicks(pid) / CLK_TCK;
}

/** Resident memory of a process (VmRSS of /proc/<pid>/status), in bytes. */
export function rssBytes(pid: number): number {
  return residentMemory(pid).rss;
}

/**
 * VmRSS and its anonymous part (RssAnon: heaps, stacks, buffers) of /proc/<pid>/status, in
 * bytes. The rest is mostly file pages, such as the node binary's code paged in the first time
 * the JIT or a new code path needs it, which is no cost of a connection.
 */
export function residentMemory(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status);
    if (match === null) throw new Error(`no ${name} in /proc/${pid}/status`);
    return Number(match[1]) * 1024;
  };
  return { rss: field('VmRSS'), anon: field('RssAnon') };
}

/**
 * Resident anonymous memory of a process split by where it lives, from /proc/<pid>/smaps, in
 * bytes: `malloc` is the brk heap (native allocations such as uWS's per-socket state), `other`
 * every other anonymous mapping (V8's heap pages, thread arenas, stacks).
 */
export function anonymousMemory(pid: number): { malloc: number; other: number } {
  let malloc = 0;
  let other = 0;
  let into: 'malloc' | 'other' | null = null;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const mapping = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (mapping !== null) {
      into = mapping[1] === '[heap]' ? 'malloc' : mapping[1] === '' ? 'other' : null;
    } else if (into !== null && line.startsWith('Rss:')) {
      const kb = Number(/(\d+)/.exec(line)![1]);
      if (into === 'malloc') malloc += kb * 1024;
      else other += kb * 1024;
    }
  }
  return { malloc, other };
}

/** The soft limit on open files of this process (what `ulimit -n` shows). */
export function openFileLimit(): number {
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return match === null || match[1] === 'unlimited' ? Infinity : Number(match[1]);
}

/** The hard limit on open files of a process (`ulimit -Hn`): how far its soft limit may be raised. */
export function hardOpenFileLimit(pid: number | 'self' = 'self'): number {
  const match = /^Max open files\s+\S+\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return match === null || match[1] === 'unlimited' ? Infinity : Number(match[1]);
}

/** The soft limit on open files of another process, as it runs. */
export function processOpenFileLimit(pid: number): number {
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return match === null || match[1] === 'unlimited' ? Infinity : Number(match[1]);
}

/** File descriptors a process holds right now (entries of /proc/<pid>/fd). */
export function openFiles(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** What the figures were measured on, for the JSON results and docs/benchmarks.md. */
export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGb: number;
  node: string;
  uws: string;
  kernel: string;
  clockTicks: number;
  openFileLimit: number;
  loadAverage: string;
}

/** Describes this machine: core count, CPU model, memory, Node and uWS versions, load right now. */
export function machine(): Machine {
  const cpuinfo = safeRead('/proc/cpuinfo');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  return {
    cpus: cpus().length,
    cpuModel: model.trim(),
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    uws: loaded.description,
    kernel: safeRead('/proc/sys/kernel/osrelease').trim(),
    clockTicks: CLK_TCK,
    openFileLimit: openFileLimit(),
    loadAverage: safeRead('/proc/loadavg').split(' ').slice(0, 3).join(' '),
  };
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** A free TCP port on 127.0.0.1 (bound and released; the server takes it right after). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  server.close();
  await once(server, 'close');
  return port;
}

/** A server running as a child process, measured through /proc/<pid>. */
export interface ServerProcess {
  /** How tables name it: "pws-server, metrics on", "bare uWS reference"… */
  name: string;
  pid: number;
  port: number;
  child: ChildProcess;
  /** Everything it wrote to stdout and stderr, for error messages. */
  output(): string;
  /** SIGTERM, then SIGKILL if it has not exited within two seconds. */
  stop(): Promise<void>;
}

/** How to start a server child. */
export interface ServerSpec {
  name: string;
  /** Arguments after `node` (a script and its arguments). */
  args: string[];
  env: Record<string, string>;
  /** Open files the child needs: its soft limit is raised to this when the current one is lower. */
  fds?: number;
  /** Node flags, e.g. ['--cpu-prof', '--cpu-prof-dir', dir]. */
  nodeFlags?: string[];
}

/** pws-server's launcher in this checkout. */
export const PWS_BIN = join(ROOT, 'bin', 'pws-server.js');

/**
 * pws-server as its users start it: `node bin/pws-server.js start`, configured by environment.
 * `bin` may name another build's launcher, to compare a change against this one.
 */
export function pwsServerSpec(name: string, env: Record<string, string>, configPath?: string, bin = PWS_BIN): ServerSpec {
  const args = [bin, 'start'];
  if (configPath !== undefined) args.push('--config', configPath);
  return { name, args, env };
}

/** The bare-uWS reference server of bench/reference-server.ts. */
export function referenceServerSpec(): ServerSpec {
  return { name: 'bare uWS reference', args: [join(ROOT, 'dist', 'bench', 'reference-server.js')], env: {} };
}

let profiles = 0;

// Every child still running, so that a runner stopped by Ctrl-C or an uncaught error leaves none behind.
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const child of running) child.kill('SIGKILL');
    process.exit(130);
  });
}

/** Kills `child` with the others if the runner stops early (for children not started by startServer, such as redis-server). */
export function track(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
}

/**
 * Spawns `node <args>` and resolves once its port accepts connections. The child gets a free
 * port in PORT and HOST=127.0.0.1; when it needs more open files than this process may hold, it
 * is started through `bash -c 'ulimit -n …; exec node …'`, so its pid is still node's.
 */
export async function startServer(spec: ServerSpec): Promise<ServerProcess> {
  const port = await freePort();
  const env = { ...process.env, HOST: '127.0.0.1', PORT: String(port), ...spec.env };
  const flags = [...(spec.nodeFlags ?? [])];
  // Profiles named for the server, e.g. pws-server-metrics-on-3.cpuprofile, written when it exits.
  if (flags.includes('--cpu-prof')) flags.push('--cpu-prof-name', `${spec.name.replace(/\W+/g, '-')}-${++profiles}.cpuprofile`);
  const child = spawnNode([...flags, ...spec.args], env, spec.fds ?? 0, ['ignore', 'pipe', 'pipe']);
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-8192);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exited = false;
  const exit = once(child, 'exit').then(() => {
    exited = true;
  });
  const deadline = Date.now() + 15_000;
  while (!(await accepts(port))) {
    if (exited) throw new Error(`${spec.name} exited before listening on ${port}:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${spec.name} did not listen on ${port} within 15 s:\n${output}`);
    }
    await sleep(50);
  }
  return {
    name: spec.name,
    pid: child.pid!,
    port,
    child,
    output: () => output,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exit;
      clearTimeout(timer);
    },
  };
}

/**
 * Spawns `node <args>`, first raising the soft open-file limit to `fds` through bash when this
 * process's limit is lower. `exec` keeps the pid, so /proc/<pid> and kill() reach node itself.
 */
export function spawnNode(args: string[], env: NodeJS.ProcessEnv, fds: number, stdio: Array<'ignore' | 'pipe' | 'inherit' | 'ipc'>): ChildProcess {
  if (fds <= openFileLimit()) return spawn(process.execPath, args, { env, stdio, cwd: ROOT });
  const quoted = [process.execPath, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return spawn('bash', ['-c', `ulimit -n ${fds} || exit 97; exec ${quoted}`], { env, stdio, cwd: ROOT });
}

/** Node flag for startServer's spec: an inspector on a free loopback port, for collectGarbage(). */
export const INSPECT_FLAG = '--inspect=127.0.0.1:0';

/**
 * A full garbage collection in a server started with INSPECT_FLAG, through the inspector's
 * HeapProfiler.collectGarbage: V8 collects everything unreachable and gives back the pages its
 * heap no longer needs, so RSS read afterwards holds what the process keeps, not where its heap
 * sizing happened to stand.
 */
export async function collectGarbage(server: ServerProcess): Promise<void> {
  const url = /Debugger listening on (ws:\/\/\S+)/.exec(server.output())?.[1];
  if (url === undefined) throw new Error(`${server.name} has no inspector: start it with ${INSPECT_FLAG}`);
  const { default: WebSocket } = await import('ws');
  const inspector = new WebSocket(url);
  try {
    await once(inspector, 'open');
    const done = new Promise<void>((resolvePromise, reject) => {
      inspector.on('message', (message) => {
        const reply = JSON.parse(message.toString()) as { id?: number; error?: { message: string } };
        if (reply.id !== 1) return;
        if (reply.error !== undefined) reject(new Error(`HeapProfiler.collectGarbage: ${reply.error.message}`));
        else resolvePromise();
      });
      inspector.once('error', reject);
    });
    inspector.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
    await done;
  } finally {
    inspector.close();
  }
}

export function accepts(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolvePromise(true);
    });
    socket.once('error', () => resolvePromise(false));
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The median of a list of numbers. */
export function median(values: number[]): number {
  return quantile(values, 0.5);
}

/** The q-quantile (nearest rank) of a list of numbers. */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** The client process of bench/client.ts, driven over IPC. */
export interface ClientProcess {
  pid: number;
  /**
   * Opens `count` sockets (in waves of `wave` handshakes), socket i to urls[i % urls.length],
   * each subscribed to `channel` if given (a private one signed with `auth`), and resolves with
   * the milliseconds it took.
   */
  open(url: string | string[], count: number, channel: string | null, wave?: number, auth?: { key: string; secret: string }): Promise<number>;
  /** Every open socket sends `count` client events (no reply: the deliveries an expect() awaits are the answer). */
  trigger(event: string, channel: string, data: string, count: number): void;
  /**
   * Subscribes each open socket i to `channels` more channels named `<prefix><i>-<k>`, `wave` at
   * a time per socket, and resolves with the milliseconds it took once every one is confirmed.
   */
  subscribe(prefix: string, channels: number, wave?: number): Promise<number>;
  /** Resets the delivery count; delivered() resolves once it reaches `total`. */
  expect(total: number): void;
  /** Resolves when the expected deliveries have arrived; rejects after `timeoutMs` with how many did. */
  delivered(timeoutMs: number): Promise<void>;
  /** Rejects if more frames than expected have arrived (a duplicate delivery). */
  verify(): Promise<void>;
  /** Closes every socket. */
  close(): Promise<void>;
  /** Ends the process. */
  stop(): Promise<void>;
}

/** Forks bench/client.ts with an open-file limit of at least `fds`. */
export function startClient(fds: number): ClientProcess {
  const child = spawnNode([join(ROOT, 'dist', 'bench', 'client.js')], process.env, fds, ['ignore', 'inherit', 'inherit', 'ipc']);
  running.add(child);
  child.once('exit', () => running.delete(child));
  // Reports are handled by whoever waits for one; an error report fails the current wait.
  type Report = import('./client').ClientReport;
  let waiter: { op: Report['op']; resolve: (r: Report) => void; reject: (e: Error) => void } | null = null;
  let lastError: Error | null = null;
  let exited = false;
  const exit = once(child, 'exit').then(([code]) => {
    exited = true;
    const err = new Error(code === 97 ? `client: cannot raise the open-file limit to ${fds} (ulimit -n)` : `client exited (${code})`);
    waiter?.reject(err);
  });
  child.on('message', (report: Report) => {
    if (report.op === 'error') {
      lastError = new Error(`client: ${report.message}`);
      waiter?.reject(lastError);
      return;
    }
    if (waiter !== null && waiter.op === report.op) waiter.resolve(report);
  });
  // Waits for the report `op`; with no timeout the caller races it against its own.
  const wait = (op: Report['op'], timeoutMs: number | null, onTimeout: () => Promise<string>): Promise<Report> =>
    new Promise((resolvePromise, reject) => {
      if (lastError !== null) return reject(lastError);
      if (exited) return reject(new Error('client has exited'));
      const timer =
        timeoutMs === null
          ? undefined
          : setTimeout(() => {
              waiter = null;
              onTimeout().then((why) => reject(new Error(why)), reject);
            }, timeoutMs);
      waiter = {
        op,
        resolve: (r) => {
          clearTimeout(timer);
          waiter = null;
          resolvePromise(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          waiter = null;
          reject(e);
        },
      };
    });
  const send = (command: import('./client').ClientCommand): void => {
    child.send(command);
  };
  const count = async (): Promise<{ count: number; sockets: number }> => {
    const reply = wait('count', 5000, async () => 'client did not answer a count request');
    send({ op: 'count' });
    return (await reply) as { count: number; sockets: number };
  };
  let expected = 0;
  let pending: Promise<Report> | null = null;
  return {
    pid: child.pid!,
    async open(url, n, channel, wave = 200, auth) {
      const urls = typeof url === 'string' ? [url] : url;
      const reply = wait('opened', 120_000, async () => `opening ${n} sockets to ${urls[0]} took over 120 s`);
      send({ op: 'open', urls, count: n, channel, wave, auth });
      return ((await reply) as { ms: number }).ms;
    },
    trigger(event, channel, data, count) {
      send({ op: 'trigger', event, channel, data, count });
    },
    async subscribe(prefix, channels, wave = 500) {
      const reply = wait('subscribed', 120_000, async () => `subscribing to ${channels} channels per socket took over 120 s`);
      send({ op: 'subscribe', prefix, channels, wave });
      return ((await reply) as { ms: number }).ms;
    },
    expect(total) {
      expected = total;
      // Armed before the events are sent, so a fast 'delivered' report is not missed.
      pending = wait('delivered', null, async () => '');
      pending.catch(() => undefined);
      send({ op: 'expect', total });
    },
    async delivered(timeoutMs) {
      if (pending === null) throw new Error('delivered() without expect()');
      const current = pending;
      pending = null;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          waiter = null;
          count().then(
            (c) => reject(new Error(`LOST DELIVERIES: ${c.count} of ${expected} frames arrived within ${timeoutMs / 1000} s (${expected - c.count} missing, ${c.sockets} sockets open)`)),
            reject,
          );
        }, timeoutMs);
      });
      try {
        await Promise.race([current, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async verify() {
      const c = await count();
      if (c.count !== expected) throw new Error(`DUPLICATE DELIVERIES: ${c.count} frames arrived, ${expected} expected`);
    },
    async close() {
      const reply = wait('closed', 60_000, async () => 'closing the sockets took over 60 s');
      send({ op: 'close' });
      await reply;
    },
    async stop() {
      if (!exited) child.kill('SIGTERM');
      await exit;
    },
  };
}
