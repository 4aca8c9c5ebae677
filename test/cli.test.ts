// The command line (src/cli.ts, bin/pws-server.js), run as a child process the way users run it:
// help, one-line errors for bad options, start-up with the default app, and graceful shutdown on
// SIGTERM and SIGINT. Needs dist/ built (npx tsc -p .).
import { after, test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Pusher from 'pusher';
import PusherJs from 'pusher-js';
import { OPTION_SPECS } from '../src/options';
import { loaded } from '../src/uws';
import { RawSocket, connected, nextEvent, subscribed } from './helpers/server';
import { TLS } from './helpers/tls';

const ROOT = join(__dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'pws-server.js');
const GRACE_MS = 2000;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A clean environment: nothing from the test runner's own environment leaks into the options. */
function cleanEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, ...env };
}

function spawnCli(args: string[], env: Record<string, string> = {}): { child: ChildProcess; exited: Promise<Exit> } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = once(child, 'close').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null, stdout, stderr }));
  return { child, exited };
}

/** Runs a command that is expected to exit by itself. */
function run(args: string[], env: Record<string, string> = {}): Promise<Exit> {
  return spawnCli(args, env).exited;
}

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** Rejects if `promise` has not settled within `ms` (a liveness guard, not a speed assertion). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

interface Running {
  child: ChildProcess;
  exited: Promise<Exit>;
  port: number;
  url(path: string): string;
}

/** Starts `pws-server start` on a free port and waits until GET / answers 200. */
async function startCli(env: Record<string, string> = {}): Promise<Running> {
  const port = await freePort();
  const { child, exited } = spawnCli(['start'], { HOST: '127.0.0.1', PORT: String(port), SHUTDOWN_GRACE_PERIOD: String(GRACE_MS), ...env });
  const url = (path: string) => `http://127.0.0.1:${port}${path}`;
  let gone: Exit | null = null;
  exited.then((e) => (gone = e));
  for (const deadline = Date.now() + 10_000; ; ) {
    if (gone !== null) throw new Error(`pws-server exited before answering: ${JSON.stringify(gone)}`);
    const ok = await fetch(url('/')).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('pws-server did not answer GET / within 10 s');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, exited, port, url };
}

/** Kills a server a failed test left running. */
function cleanup(server: Running | undefined): void {
  if (server !== undefined && server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
}

function pusherJs(port: number): PusherJs {
  return new PusherJs('app-key', { cluster: 'local', wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'], disableStats: true });
}

/** Asserts a single-line error on stderr, exit status 1, and no stack trace. */
function assertOneLineError(exit: Exit, line: string): void {
  assert.deepEqual({ code: exit.code, stderr: exit.stderr, stdout: exit.stdout }, { code: 1, stderr: `${line}\n`, stdout: '' });
  assert.doesNotMatch(exit.stderr, /\n\s+at /);
}

describe('help', () => {
  test('--help prints the usage with the start command and exits 0', async () => {
    for (const flag of ['--help', '-h']) {
      const exit = await run([flag]);
      assert.equal(exit.code, 0);
      assert.equal(exit.stderr, '');
      assert.match(exit.stdout, /^Usage: pws-server <command> \[options\]\n/);
      assert.match(exit.stdout, /\n {2}start {2,}Start the server/);
      for (const option of ['--config <file>', '--port <n>', '-h, --help', '-v, --version']) assert.ok(exit.stdout.includes(option), option);
    }
  });

  test('start --help lists every environment variable with its default and exits 0', async () => {
    const exit = await run(['start', '--help']);
    assert.equal(exit.code, 0);
    assert.equal(exit.stderr, '');
    assert.match(exit.stdout, /^Usage: pws-server start \[--config file.json\] \[--port n\]\n/);
    for (const spec of OPTION_SPECS) {
      const line = exit.stdout.split('\n').find((l) => l.startsWith(`  ${spec.env} `));
      assert.ok(line, `${spec.env} is missing from start --help`);
      assert.ok(line.endsWith(`${spec.help} (default: ${spec.default === '' ? 'unset' : spec.default})`), line);
    }
  });

  test('--version prints the package version', async () => {
    const exit = await run(['--version']);
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    assert.deepEqual(exit, { code: 0, signal: null, stdout: `${version}\n`, stderr: '' });
  });
});

describe('a bad option prints one line naming it and exits 1', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pws-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, 'missing.json');
  const broken = join(dir, 'broken.json');
  writeFileSync(broken, '{"PORT": ');
  const cases: [string, string[], Record<string, string>, string][] = [
    ['PORT=abc', ['start'], { PORT: 'abc' }, 'pws-server: PORT: expected a whole number, got "abc"'],
    ['METRICS_DRIVER=nope', ['start'], { METRICS_DRIVER: 'nope' }, 'pws-server: METRICS_DRIVER: unknown metrics driver "nope" (valid: prometheus, pushgateway)'],
    ['DEBUG=yes', ['start'], { DEBUG: 'yes' }, 'pws-server: DEBUG: expected true, false, 1 or 0, got "yes"'],
    [
      'METRICS_PROMETHEUS_PREFIX=my-app_',
      ['start'],
      { METRICS_ENABLED: '1', METRICS_PROMETHEUS_PREFIX: 'my-app_' },
      'pws-server: METRICS_PROMETHEUS_PREFIX: must be letters, digits, _ and : only, not starting with a digit (a Prometheus metric name matches [a-zA-Z_:][a-zA-Z0-9_:]*), got "my-app_"',
    ],
    ['--port 70000', ['start', '--port', '70000'], {}, 'pws-server: PORT: must be at most 65535, got 70000'],
    ['--port=-1', ['start', '--port=-1'], {}, 'pws-server: PORT: must be at least 0, got -1'],
    ['--config of a missing file', ['start', '--config', missing], {}, `pws-server: --config ${missing}: cannot read the file (ENOENT)`],
    ['--config without a value', ['start', '--config'], {}, 'pws-server: --config needs a value'],
    ['an unknown option', ['start', '--verbose'], {}, 'pws-server: unknown option --verbose (see pws-server --help)'],
    ['an unknown command', ['stop'], {}, 'pws-server: unknown command "stop" (see pws-server --help)'],
    ['no command', [], {}, 'pws-server: missing command: use "pws-server start"'],
    ['an SSL_KEY that does not match SSL_CERT', ['start'], { SSL_CERT: TLS.cert, SSL_KEY: TLS.otherKey }, `pws-server: SSL_KEY: ${TLS.otherKey} does not match the certificate in ${TLS.cert}`],
    ['an encrypted SSL_KEY without SSL_PASS', ['start'], { SSL_CERT: TLS.cert, SSL_KEY: TLS.encryptedKey }, `pws-server: SSL_PASS: must be set: ${TLS.encryptedKey} is an encrypted key`],
  ];
  for (const [what, args, env, line] of cases) {
    test(what, async () => {
      assertOneLineError(await run(args, env), line);
    });
  }

  test('--config of a file that is not JSON', async () => {
    const exit = await run(['start', `--config=${broken}`]);
    assert.equal(exit.code, 1);
    assert.match(exit.stderr, new RegExp(`^pws-server: --config ${broken}: not valid JSON \\([^\\n]+\\)\\n$`));
  });

  test('a PORT already in use', async () => {
    const busy = createServer().listen(0, '127.0.0.1');
    await once(busy, 'listening');
    const { port } = busy.address() as { port: number };
    try {
      assertOneLineError(await run(['start'], { HOST: '127.0.0.1', PORT: String(port) }), `pws-server: PORT: cannot listen on 127.0.0.1:${port} (in use, or not permitted)`);
    } finally {
      busy.close();
    }
  });

  // uWS binds with SO_REUSEPORT unless told otherwise: two pws-servers would share a port and the
  // kernel would split their clients between them.
  for (const option of ['PORT', 'METRICS_SERVER_PORT'] as const) {
    test(`a ${option} held by another pws-server`, async () => {
      let first: Running | undefined;
      let second: ReturnType<typeof spawnCli> | undefined;
      try {
        const metricsPort = await freePort();
        first = await startCli({ METRICS_ENABLED: '1', METRICS_SERVER_PORT: String(metricsPort) });
        const port = option === 'PORT' ? first.port : metricsPort;
        const env = { HOST: '127.0.0.1', PORT: String(option === 'PORT' ? first.port : await freePort()), METRICS_ENABLED: '1', METRICS_SERVER_PORT: String(metricsPort) };
        if (option === 'PORT') env.METRICS_SERVER_PORT = String(await freePort());
        second = spawnCli(['start'], env);
        assertOneLineError(await within(second.exited, 10_000, 'the second server to exit'), `pws-server: ${option}: cannot listen on 127.0.0.1:${port} (in use, or not permitted)`);
      } finally {
        if (second !== undefined && second.child.exitCode === null) second.child.kill('SIGKILL');
        cleanup(first);
      }
    });
  }
});

describe('start', () => {
  test('with no configuration, the default app app-id/app-key/app-secret works end to end', async () => {
    let server: Running | undefined;
    const client = new Array<PusherJs>();
    try {
      server = await startCli();
      const subscriber = pusherJs(server.port);
      client.push(subscriber);
      await connected(subscriber);
      await subscribed(subscriber, 'news');
      const got = nextEvent(subscriber, 'news', 'headline');
      const sdk = new Pusher({ appId: 'app-id', key: 'app-key', secret: 'app-secret', host: '127.0.0.1', port: String(server.port), useTLS: false });
      assert.equal((await sdk.trigger('news', 'headline', { title: 'It works' })).status, 200);
      assert.deepEqual(await got, { title: 'It works' });
      subscriber.disconnect();
      server.child.kill('SIGTERM');
      const exit = await within(server.exited, GRACE_MS + 5000, 'exit after SIGTERM');
      assert.equal(exit.code, 0);
      assert.equal(exit.stderr, '');
      // Which native uWebSockets.js build runs, then where it listens.
      const build = `uWebSockets.js ${loaded.build.version} \\(native, ${process.platform}-${process.arch}, ABI ${process.versions.modules}\\)`;
      assert.match(exit.stdout, new RegExp(`info {2}${build}\\n.*info {2}pws-server listening on http/ws://127\\.0\\.0\\.1:${server.port}\\n`));
    } finally {
      for (const c of client) c.disconnect();
      cleanup(server);
    }
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal}: every socket gets pusher:error 4200 and close code 4200, and the process exits 0 within SHUTDOWN_GRACE_PERIOD`, async () => {
      let server: Running | undefined;
      try {
        server = await startCli();
        const sockets = [await RawSocket.connect(`ws://127.0.0.1:${server.port}/app/app-key?protocol=7`), await RawSocket.connect(`ws://127.0.0.1:${server.port}/app/app-key?protocol=7`)];
        for (const socket of sockets) await socket.request({ event: 'pusher:subscribe', data: { channel: 'news' } }, (f) => f.event === 'pusher_internal:subscription_succeeded');
        server.child.kill(signal);
        const message = 'Server is shutting down, please reconnect';
        for (const socket of sockets) {
          assert.deepEqual(await within(socket.closed, GRACE_MS + 5000, 'socket close'), { code: 4200, reason: message });
          assert.deepEqual(socket.frames.at(-1), { event: 'pusher:error', data: { code: 4200, message } });
        }
        const exit = await within(server.exited, GRACE_MS + 5000, `exit after ${signal}`);
        assert.deepEqual([exit.code, exit.signal, exit.stderr], [0, null, '']);
        assert.match(exit.stdout, new RegExp(`info {2}${signal} received: closing connections \\(grace period ${GRACE_MS} ms\\)\\n`));
        assert.match(exit.stdout, /info {2}pws-server stopped\n$/);
      } finally {
        cleanup(server);
      }
    });
  }

  test('SIGTERM during start-up (waiting for Redis): the node finishes starting, then stops cleanly with exit code 0', async () => {
    let server: Running | undefined;
    try {
      // Nothing listens on this port: start-up waits 3 s for Redis while GET / already answers.
      server = await startCli({ ADAPTER_DRIVER: 'redis', DB_REDIS_HOST: '127.0.0.1', DB_REDIS_PORT: String(await freePort()), SHUTDOWN_GRACE_PERIOD: '0' });
      server.child.kill('SIGTERM');
      const exit = await within(server.exited, 20_000, 'exit after SIGTERM');
      assert.deepEqual([exit.code, exit.signal], [0, null], exit.stdout + exit.stderr);
      assert.match(exit.stderr, /redis: not reachable after 3000 ms/);
      assert.match(exit.stdout, /listening on[^\n]*\n.*SIGTERM received[^\n]*\n(.*\n)*.*pws-server stopped\n$/);
    } finally {
      cleanup(server);
    }
  });

  test(
    'SIGTERM: /ready answers 503 while sockets drain',
    async () => {
      let server: Running | undefined;
      try {
        server = await startCli({ SHUTDOWN_GRACE_PERIOD: '5000' });
        const socket = await RawSocket.connect(`ws://127.0.0.1:${server.port}/app/app-key?protocol=7`);
        await socket.socketId();
        assert.equal((await fetch(server.url('/ready'))).status, 200);
        server.child.kill('SIGTERM');
        await socket.next((f) => f.event === 'pusher:error');
        const ready = await fetch(server.url('/ready'));
        assert.deepEqual([ready.status, await ready.text()], [503, 'Shutting down']);
        assert.equal((await within(server.exited, 10_000, 'exit after SIGTERM')).code, 0);
      } finally {
        cleanup(server);
      }
    },
  );
});
