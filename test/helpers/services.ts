// Real external services for tests: Prometheus, Pushgateway and promtool (Debian packages
// `prometheus` and `prometheus-pushgateway`, installed by scripts/test-setup.sh).
// Each instance runs on a free loopback port with its own temp dir; processes never outlive
// the test process (stop() kills them, and an exit hook kills any still running).
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { findTool, isCI, missingToolSkip, requireTool } from './tools';

export { findTool, isCI, missingToolSkip, requireTool };

// ------------------------------------------------------------------------ process bookkeeping

const live = new Set<ChildProcess>();
let hooksInstalled = false;

function killAllNow(): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  live.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllNow);
  // On a fatal signal, kill our children, then die of that signal as we would have.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAllNow();
      // Only re-raise when nobody else handles it (re-raising would run their handler twice).
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

/** Registers a child so the exit hooks kill it; unrefs it so a forgotten one does not keep the process alive. */
export function track(child: ChildProcess): void {
  installHooks();
  live.add(child);
  child.once('exit', () => live.delete(child));
  // Do not keep the event loop alive for a forgotten service: the exit hook kills it.
  child.unref();
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the child has exited. */
export async function killChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    live.delete(child);
    return;
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    child.kill('SIGTERM');
  } catch {
    /* ignore */
  }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), graceMs);
  });
  const slow = await Promise.race([exited.then(() => false), timedOut]);
  clearTimeout(timer);
  if (slow) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* ignore */
    }
    await exited;
  }
  live.delete(child);
}

// ------------------------------------------------------------------------ small utilities

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('freePort: no port'))));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The last maxChars characters of a (log) file; empty when unreadable. */
export function tail(file: string, maxChars = 4000): string {
  try {
    const s = fs.readFileSync(file, 'utf8');
    return s.length > maxChars ? '…' + s.slice(-maxChars) : s;
  } catch {
    return '';
  }
}

async function httpGet(url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: await res.text() };
}

export interface Spawned {
  child: ChildProcess;
  dir: string;
  logFile: string;
}

/** Spawns `bin args` with stdout/stderr going to a log file in `dir`; tracked for cleanup. */
export function spawnService(bin: string, args: string[], dir: string): Spawned {
  const logFile = path.join(dir, 'service.log');
  const fd = fs.openSync(logFile, 'a');
  try {
    const child = spawn(bin, args, { cwd: dir, stdio: ['ignore', fd, fd], env: process.env });
    track(child);
    child.on('error', () => {
      /* reported via waitReady */
    });
    return { child, dir, logFile };
  } finally {
    fs.closeSync(fd);
  }
}

/** Polls `url` until it answers 200; fails early when the process exits. */
async function waitReady(s: Spawned, url: string, name: string, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let spawnError: Error | undefined;
  s.child.once('error', (e) => (spawnError = e));
  let last = '';
  while (Date.now() < deadline) {
    if (spawnError) throw new Error(`${name} failed to start: ${spawnError.message}`);
    if (s.child.exitCode !== null || s.child.signalCode !== null) {
      throw new Error(
        `${name} exited (code ${s.child.exitCode}, signal ${s.child.signalCode}) before becoming ready:\n` +
          tail(s.logFile),
      );
    }
    try {
      const r = await httpGet(url, 1000);
      if (r.status === 200) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`${name} not ready at ${url} after ${timeoutMs} ms (${last}):\n${tail(s.logFile)}`);
}

export function mkTemp(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function rmTemp(dir: string): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    /* ignore */
  }
}

/** Starts a service on a fresh free port, retrying a few times if the port was taken meanwhile. */
async function startOnFreePort(
  name: string,
  bin: string,
  dir: string,
  argsFor: (port: number) => string[],
): Promise<{ s: Spawned; port: number; url: string }> {
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const s = spawnService(bin, argsFor(port), dir);
    try {
      await waitReady(s, `${url}/-/ready`, name);
      return { s, port, url };
    } catch (e) {
      lastErr = e;
      await killChild(s.child, 1000);
      const msg = String((e as Error).message);
      if (!/address already in use|bind/i.test(msg)) break;
    }
  }
  throw lastErr;
}

// ------------------------------------------------------------------------ Prometheus

export interface PrometheusOptions {
  /** `host:port` (scraped at metricsPath) or full URLs like `http://127.0.0.1:1234/metrics`. */
  scrapeTargets: string[];
  /** Scrape (and evaluation) interval; default 1. */
  scrapeIntervalSeconds?: number;
  /** Path for `host:port` targets; default /metrics. */
  metricsPath?: string;
  /** job label for the scrape job; default "pws". Extra jobs (other paths/schemes) get "<job>_2", ... */
  jobName?: string;
  /** honor_labels for the scrape jobs (useful when scraping a Pushgateway); default false. */
  honorLabels?: boolean;
  /** Rule files (absolute paths) to load and evaluate every scrape interval. */
  ruleFiles?: string[];
}

export interface PrometheusTarget {
  scrapeUrl: string;
  health: string;
  lastError: string;
  labels: Record<string, string>;
  lastScrape: string;
}

export interface PrometheusInstance {
  url: string;
  port: number;
  /** Temp dir holding prometheus.yml, the TSDB and service.log. */
  dir: string;
  stop(): Promise<void>;
  /** Instant query via /api/v1/query; returns data.result (an array of samples for vectors). */
  query(promql: string): Promise<any[]>;
  /** Polls query(promql) until predicate(result) is true; throws after timeoutMs with diagnostics. */
  waitForValue(promql: string, predicate: (result: any[]) => boolean, timeoutMs?: number): Promise<any[]>;
  /** Active targets from /api/v1/targets (health, lastError, ...). */
  targetsHealth(): Promise<PrometheusTarget[]>;
  /** Prometheus' own log so far (for failure messages). */
  log(): string;
}

function yamlStr(s: string): string {
  return JSON.stringify(s); // a JSON string is a valid YAML double-quoted scalar
}

function buildPrometheusConfig(opts: PrometheusOptions): string {
  const interval = opts.scrapeIntervalSeconds ?? 1;
  if (!(interval > 0)) throw new Error('scrapeIntervalSeconds must be > 0');
  const timeout = Math.min(interval, 10);
  const defaultPath = opts.metricsPath ?? '/metrics';
  const baseJob = opts.jobName ?? 'pws';
  // Group targets by (scheme, path): one scrape job each.
  const groups = new Map<string, { scheme: string; path: string; targets: string[] }>();
  for (const t of opts.scrapeTargets) {
    let scheme = 'http';
    let p = defaultPath;
    let hostPort = t;
    if (/^https?:\/\//.test(t)) {
      const u = new URL(t);
      scheme = u.protocol.replace(':', '');
      p = u.pathname && u.pathname !== '/' ? u.pathname : defaultPath;
      hostPort = u.host;
    }
    const key = `${scheme} ${p}`;
    if (!groups.has(key)) groups.set(key, { scheme, path: p, targets: [] });
    groups.get(key)!.targets.push(hostPort);
  }
  const lines = [
    'global:',
    `  scrape_interval: ${interval}s`,
    `  scrape_timeout: ${timeout}s`,
    `  evaluation_interval: ${interval}s`,
    ...(opts.ruleFiles?.length ? ['rule_files:', ...opts.ruleFiles.map((f) => `  - ${yamlStr(f)}`)] : []),
    'scrape_configs:',
  ];
  let i = 0;
  for (const g of groups.values()) {
    i++;
    lines.push(
      `  - job_name: ${yamlStr(i === 1 ? baseJob : `${baseJob}_${i}`)}`,
      `    scheme: ${g.scheme}`,
      `    metrics_path: ${yamlStr(g.path)}`,
      `    honor_labels: ${opts.honorLabels ? 'true' : 'false'}`,
      '    static_configs:',
      `      - targets: [${g.targets.map(yamlStr).join(', ')}]`,
    );
  }
  if (groups.size === 0) lines[lines.length - 1] = 'scrape_configs: []';
  return lines.join('\n') + '\n';
}

/** Starts the real `prometheus` binary scraping `scrapeTargets`; waits for /-/ready. */
export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusInstance> {
  const bin = requireTool('prometheus', 'prometheus');
  const dir = mkTemp('pws-prometheus-');
  const configFile = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(configFile, buildPrometheusConfig(opts));
  fs.mkdirSync(path.join(dir, 'data'));
  let started;
  try {
    started = await startOnFreePort('prometheus', bin, dir, (port) => [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--web.enable-lifecycle',
      '--log.level=info',
    ]);
  } catch (e) {
    rmTemp(dir);
    throw e;
  }
  const { s, port, url } = started;

  const query = async (promql: string): Promise<any[]> => {
    const r = await httpGet(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    let body: any;
    try {
      body = JSON.parse(r.body);
    } catch {
      throw new Error(`prometheus query ${promql}: HTTP ${r.status}: ${r.body.slice(0, 500)}`);
    }
    if (body.status !== 'success') {
      throw new Error(`prometheus query ${promql}: ${body.errorType ?? ''} ${body.error ?? r.body.slice(0, 500)}`);
    }
    return body.data.result;
  };

  const targetsHealth = async (): Promise<PrometheusTarget[]> => {
    const r = await httpGet(`${url}/api/v1/targets?state=active`);
    const body = JSON.parse(r.body);
    return (body.data?.activeTargets ?? []).map((t: any) => ({
      scrapeUrl: t.scrapeUrl,
      health: t.health,
      lastError: t.lastError,
      labels: t.labels,
      lastScrape: t.lastScrape,
    }));
  };

  const waitForValue = async (
    promql: string,
    predicate: (result: any[]) => boolean,
    timeoutMs = 15000,
  ): Promise<any[]> => {
    const deadline = Date.now() + timeoutMs;
    let last: any[] | undefined;
    let lastErr: unknown;
    for (;;) {
      try {
        last = await query(promql);
        lastErr = undefined;
        if (predicate(last)) return last;
      } catch (e) {
        lastErr = e;
      }
      if (Date.now() >= deadline) break;
      await sleep(200);
    }
    let targets = '';
    try {
      targets = JSON.stringify(await targetsHealth());
    } catch (e) {
      targets = `(targets unavailable: ${(e as Error).message})`;
    }
    throw new Error(
      `waitForValue(${promql}) timed out after ${timeoutMs} ms; last result ${JSON.stringify(last)}` +
        (lastErr ? `; last error ${(lastErr as Error).message}` : '') +
        `; targets ${targets}`,
    );
  };

  let stopped = false;
  return {
    url,
    port,
    dir,
    query,
    waitForValue,
    targetsHealth,
    log: () => tail(s.logFile, 20000),
    async stop() {
      if (stopped) return;
      stopped = true;
      await killChild(s.child);
      rmTemp(dir);
    },
  };
}

// ------------------------------------------------------------------------ Pushgateway

export interface PushgatewayInstance {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Text of the gateway's /metrics (pushed groups plus its own metrics). */
  metricsText(): Promise<string>;
  log(): string;
}

/** Starts the real `prometheus-pushgateway` binary on a free loopback port, in-memory only. */
export async function startPushgateway(): Promise<PushgatewayInstance> {
  const bin = requireTool('prometheus-pushgateway', 'prometheus-pushgateway');
  const dir = mkTemp('pws-pushgateway-');
  let started;
  try {
    started = await startOnFreePort('prometheus-pushgateway', bin, dir, (port) => [
      `--web.listen-address=127.0.0.1:${port}`,
      // Debian's default is /var/lib/prometheus/pushgateway.data; empty keeps metrics in memory only.
      '--persistence.file=',
    ]);
  } catch (e) {
    rmTemp(dir);
    throw e;
  }
  const { s, port, url } = started;
  let stopped = false;
  return {
    url,
    port,
    log: () => tail(s.logFile, 20000),
    async metricsText() {
      const r = await httpGet(`${url}/metrics`);
      if (r.status !== 200) throw new Error(`pushgateway /metrics: HTTP ${r.status}: ${r.body.slice(0, 500)}`);
      return r.body;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await killChild(s.child);
      rmTemp(dir);
    },
  };
}

// ------------------------------------------------------------------------ promtool

/** Pipes `text` into `promtool check metrics`; resolves with its exit code and output. */
export function runPromtoolCheckMetrics(
  text: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = requireTool('promtool', 'prometheus');
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    track(child);
    child.ref(); // we await this one
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin!.on('error', () => {
      /* EPIPE if promtool exits early: its output says why */
    });
    child.stdin!.end(text);
  });
}
