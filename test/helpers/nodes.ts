// pws-server nodes as child processes, started the way users start them
// (`node bin/pws-server.js start` with options in the environment), for multi-node tests.
// Needs dist/ built (npx tsc -p .). Nodes never outlive the test process: stop()/kill() end
// them, and the exit hooks of ./services kill any a failed test left running.
import { spawn } from 'node:child_process';
import type Pusher from 'pusher';
import PusherJs from 'pusher-js';
import type { Socket } from 'node:net';
import * as path from 'node:path';
import { freePort, sleep, track } from './services';
import { APP } from './server';

/** The repo root: this file runs as dist/test/helpers/nodes.js. */
export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const BIN = path.join(ROOT, 'bin', 'pws-server.js');

export interface NodeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface PwsNode {
  port: number;
  pid: number;
  /** The options this node got (without PATH): spawnNode(node.env) starts it again on the same port. */
  env: Record<string, string>;
  /** http://127.0.0.1:PORT + path (ws:// URLs: url(path).replace('http', 'ws')). */
  url(path?: string): string;
  /** SIGTERM, then wait for the exit (SIGKILL and an error with the output if it has not exited within grace + 15 s). */
  stop(): Promise<NodeExit>;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<NodeExit>;
  /** stdout and stderr so far, interleaved as they arrived. */
  output(): string;
  /** Settles when the process has exited and its output is read. */
  readonly exited: Promise<NodeExit>;
}

export interface SpawnNodeOptions {
  /** How long to wait for GET / → 200; default 30 s. */
  readyTimeoutMs?: number;
}

const MAX_OUTPUT = 4 * 1024 * 1024;

/**
 * Note: uWebSockets.js binds with SO_REUSEPORT, so a node given the PORT of a running node does not
 * fail: both listen and the kernel splits connections between them (and GET / may be answered by
 * either). Stop a node before starting another on its port.
 *
 * Spawns `node bin/pws-server.js start` with a clean environment (PATH, NODE_V8_COVERAGE when set
 * for coverage, and `env`), HOST=127.0.0.1, PORT = a free port unless given, and
 * SHUTDOWN_GRACE_PERIOD=0 unless given; waits until GET / answers 200. Rejects with the node's
 * output if it exits first or is not ready in time.
 */
export async function spawnNode(env: Record<string, string> = {}, opts: SpawnNodeOptions = {}): Promise<PwsNode> {
  let lastErr: unknown;
  const fixedPort = env.PORT !== undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = fixedPort ? env.PORT : String(await pickPort());
    try {
      return await startOnce({ HOST: '127.0.0.1', SHUTDOWN_GRACE_PERIOD: '0', ...env, PORT: port }, opts);
    } catch (e) {
      lastErr = e;
      // A free port taken meanwhile: try another one (only when we picked it).
      if (fixedPort || !/PORT: cannot listen/.test(String((e as Error).message))) break;
    }
  }
  throw lastErr;
}

// uWebSockets.js listens with SO_REUSEPORT: a second node on a port already in use starts fine
// and shares it silently. So ports picked here are never handed out twice while a node has them.
const nodePorts = new Set<number>();

async function pickPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort();
    if (!nodePorts.has(port)) return port;
  }
  throw new Error('spawnNode: freePort kept returning ports of running nodes');
}

async function startOnce(env: Record<string, string>, opts: SpawnNodeOptions): Promise<PwsNode> {
  const port = Number(env.PORT);
  const fullEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH, ...env };
  if (process.env.NODE_V8_COVERAGE && fullEnv.NODE_V8_COVERAGE === undefined) fullEnv.NODE_V8_COVERAGE = process.env.NODE_V8_COVERAGE;
  const child = spawn(process.execPath, [BIN, 'start'], { cwd: ROOT, env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  nodePorts.add(port);
  child.once('exit', () => nodePorts.delete(port));
  let spawnError: Error | undefined;
  child.on('error', (e) => (spawnError = e));

  let out = '';
  const onData = (d: Buffer) => {
    out += d.toString('utf8');
    if (out.length > MAX_OUTPUT) out = '…' + out.slice(-MAX_OUTPUT / 2);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  // Like the child itself (unref'd by track), its pipes must not keep a forgotten node's test alive.
  const pipes = [child.stdout, child.stderr] as unknown as Socket[];
  for (const p of pipes) p.unref();
  /** Keeps the event loop alive while someone waits for this node to exit. */
  const hold = () => {
    child.ref();
    for (const p of pipes) p.ref();
  };

  let gone: NodeExit | null = null;
  const exited = new Promise<NodeExit>((resolve) => {
    child.once('close', (code, signal) => resolve((gone = { code, signal })));
    child.once('error', () => {
      if (child.pid === undefined) resolve((gone = { code: null, signal: null }));
    });
  });

  const url = (p = '/') => `http://127.0.0.1:${port}${p}`;
  const graceMs = Number(env.SHUTDOWN_GRACE_PERIOD) || 0;

  const waitExit = async (signal: NodeJS.Signals, limitMs: number): Promise<NodeExit> => {
    if (gone) return gone;
    hold();
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), limitMs)));
    const result = await Promise.race([exited, late]);
    clearTimeout(timer);
    if (result) return result;
    child.kill('SIGKILL');
    await exited;
    throw new Error(`pws-server on port ${port} did not exit within ${limitMs} ms of ${signal}; killed. Output:\n${out}`);
  };

  // Wait until GET / answers 200.
  const timeoutMs = opts.readyTimeoutMs ?? 30000;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (spawnError) throw new Error(`pws-server failed to start: ${spawnError.message}`);
    if (gone !== null || child.exitCode !== null || child.signalCode !== null) {
      hold();
      const e = await exited;
      throw new Error(`pws-server exited (code ${e.code}, signal ${e.signal}) before answering GET /:\n${out}`);
    }
    try {
      const res = await fetch(url('/'), { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) {
      await waitExit('SIGKILL', 10000).catch(() => undefined);
      throw new Error(`pws-server not ready at ${url('/')} within ${timeoutMs} ms (${last}):\n${out}`);
    }
    await sleep(50);
  }

  return {
    port,
    pid: child.pid!,
    env: { ...env },
    url,
    output: () => out,
    stop: () => waitExit('SIGTERM', graceMs + 15000),
    kill: () => waitExit('SIGKILL', 15000),
    get exited() {
      if (!gone) hold();
      return exited;
    },
  };
}

/** Spawns `count` nodes with the same env (each on its own free port), in parallel; on any failure stops the started ones. */
export async function spawnNodes(count: number, env: Record<string, string> = {}, opts: SpawnNodeOptions = {}): Promise<PwsNode[]> {
  const results = await Promise.allSettled(Array.from({ length: count }, () => spawnNode(env, opts)));
  const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
  if (failed) {
    await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.kill() : undefined)));
    throw failed.reason;
  }
  return results.map((r) => (r as PromiseFulfilledResult<PwsNode>).value);
}

/** A pusher-js client of the default app on the node at `port` (which may run in another process), its private and presence channels authorized by `sdk` as `userId`. */
export function presenceClient(port: number, sdk: Pusher, userId: string): PusherJs {
  return new PusherJs(APP.key, {
    cluster: 'local',
    wsHost: '127.0.0.1',
    wsPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }: { socketId: string; channelName: string }, callback: (err: Error | null, data: unknown) => void) =>
        callback(null, sdk.authorizeChannel(socketId, channelName, { user_id: userId })),
    } as never,
  });
}
