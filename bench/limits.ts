// Limits (issue #11): what setting every per-app limit costs while none is reached. Two
// pws-servers (metrics on, client events enabled) take turns round by round, as in the fan-out
// part: one without limits (the default, -1) and one with DEFAULT_APP_MAX_CONNS,
// DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC, DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SEC and
// DEFAULT_APP_MAX_READ_REQ_PER_SEC all set far above what the run asks. Each server has:
//
// - --sockets sockets on a public channel, for REST fan-out: --events events per round, in the
//   fan-out part's passes (batched, single, 20 single requests in flight); every REST call takes
//   from the backend-event bucket;
// - CLIENT_SOCKETS sockets on a private channel, each sending CLIENT_EVENTS client events per
//   round, each delivered to the others; every event takes from its socket's bucket.
//
// Figures are each server's CPU per million deliveries; the budget is the limited server's
// against the unlimited one's, per pass. The limited server's /metrics must show no refusal.
import { get } from 'node:http';
import { APP, CHANNEL, DATA, IN_FLIGHT, BATCH, figures, pwsSender, takeTurns, type FanOutFigures, type Round } from './fanout';
import { cpuTicks, pwsServerSpec, startClient, startServer, type ClientProcess, type ServerProcess } from './proc';
import type { BenchOptions, Budget, PartResult } from './run';

const LIMIT = 1.05;
const CLIENT_CHANNEL = 'private-bench';
// Named client-… as the protocol requires; the bench client counts it by its first letter.
const CLIENT_EVENT = 'client-bench';
const CLIENT_SOCKETS = 100;
const CLIENT_EVENTS = 50;
// Far above this run: 2,000 + 100 sockets, a few thousand events a second, 50 client events per socket a round.
const LIMITS = {
  DEFAULT_APP_MAX_CONNS: '1000000',
  DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC: '1000000000',
  DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SEC: '1000000000',
  DEFAULT_APP_MAX_READ_REQ_PER_SEC: '1000000000',
};

const PASSES = [
  { pass: 'fan-out, batched', batch: BATCH, inFlight: 1 },
  { pass: 'fan-out, single', batch: 1, inFlight: 1 },
  { pass: `fan-out, single, ${IN_FLIGHT} in flight`, batch: 1, inFlight: IN_FLIGHT },
  { pass: 'client events', batch: 0, inFlight: 0 },
] as const;

interface Contender {
  key: 'unlimited' | 'limited';
  server: ServerProcess;
  /** The --sockets sockets on the public channel. */
  fans: ClientProcess;
  /** The CLIENT_SOCKETS sockets on the private channel, which send the client events. */
  senders: ClientProcess;
  send: ReturnType<typeof pwsSender>;
}

/** Everything the part measured, as saved to JSON. */
export interface LimitsResult {
  sockets: number;
  events: number;
  clientSockets: number;
  clientEvents: number;
  limits: typeof LIMITS;
  passes: Array<{ pass: string; unlimited: FanOutFigures; limited: FanOutFigures; ratio: number }>;
  /** limit_refusals_total of the limited server at the end: 0, or the part fails. */
  refusals: number;
}

async function restRound(c: Contender, sockets: number, events: number, batch: number, inFlight: number, timeoutMs: number): Promise<Round> {
  return measure(c, c.fans, sockets * events, () => c.send(events, batch, inFlight), timeoutMs);
}

async function clientEventRound(c: Contender, timeoutMs: number): Promise<Round> {
  const deliveries = CLIENT_SOCKETS * CLIENT_EVENTS * (CLIENT_SOCKETS - 1);
  return measure(c, c.senders, deliveries, async () => c.senders.trigger(CLIENT_EVENT, CLIENT_CHANNEL, DATA, CLIENT_EVENTS), timeoutMs);
}

async function measure(c: Contender, client: ClientProcess, deliveries: number, act: () => Promise<void>, timeoutMs: number): Promise<Round> {
  client.expect(deliveries);
  const start = performance.now();
  const before = cpuTicks(c.server.pid);
  await act();
  try {
    await client.delivered(timeoutMs);
  } catch (err) {
    throw new Error(`${c.server.name}: ${(err as Error).message}`);
  }
  const ticks = cpuTicks(c.server.pid) - before;
  const ms = performance.now() - start;
  await client.verify();
  return { ticks, ms, deliveries };
}

function refusalsOf(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        let total = 0;
        for (const match of body.matchAll(/^\w*limit_refusals_total\{[^}]*\} (\S+)$/gm)) total += Number(match[1]);
        resolve(total);
      });
      res.on('error', reject);
    }).on('error', reject);
  });
}

export async function run(options: BenchOptions): Promise<PartResult<LimitsResult>> {
  const { sockets, events } = options;
  const fds = sockets + CLIENT_SOCKETS + 1024;
  const env = {
    DEFAULT_APP_ID: APP.id,
    DEFAULT_APP_KEY: APP.key,
    DEFAULT_APP_SECRET: APP.secret,
    DEFAULT_APP_ENABLE_CLIENT_MESSAGES: 'true',
    METRICS_ENABLED: 'true',
    ACTIVITY_TIMEOUT: '3600',
    SHUTDOWN_GRACE_PERIOD: '200',
  };
  const nodeFlags = options.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', `${options.profileDir}/limits`] : [];
  const contenders: Contender[] = [];
  try {
    for (const key of ['unlimited', 'limited'] as const) {
      const spec = pwsServerSpec(`pws-server, ${key === 'limited' ? 'every limit set' : 'no limit'}`, key === 'limited' ? { ...env, ...LIMITS } : env, undefined, options.pwsBin);
      const server = await startServer({ ...spec, fds, nodeFlags });
      const fans = startClient(sockets + 1024);
      const senders = startClient(CLIENT_SOCKETS + 1024);
      contenders.push({ key, server, fans, senders, send: pwsSender(server.port) });
      const url = `ws://127.0.0.1:${server.port}/app/${APP.key}?protocol=7&client=bench&version=1`;
      await fans.open(url, sockets, CHANNEL);
      await senders.open(url, CLIENT_SOCKETS, CLIENT_CHANNEL, undefined, { key: APP.key, secret: APP.secret });
      options.log(`limits: ${sockets} + ${CLIENT_SOCKETS} sockets subscribed on ${server.name}`);
    }
    const result: LimitsResult = { sockets, events, clientSockets: CLIENT_SOCKETS, clientEvents: CLIENT_EVENTS, limits: LIMITS, passes: [], refusals: 0 };
    for (const p of PASSES) {
      const play = (c: Contender): Promise<Round> =>
        p.pass === 'client events' ? clientEventRound(c, options.timeoutMs) : restRound(c, sockets, events, p.batch, p.inFlight, options.timeoutMs);
      const measured = await takeTurns(contenders, play, options, `limits, ${p.pass}`);
      const [unlimited, limited] = contenders.map((c, k) => ({ ...figures(c.server.name, measured[k]), ratioToReference: 1 }));
      limited.ratioToReference = limited.cpuPerMillion / unlimited.cpuPerMillion;
      result.passes.push({ pass: p.pass, unlimited, limited, ratio: limited.ratioToReference });
    }
    result.refusals = await refusalsOf(contenders[1].server.port);
    if (result.refusals > 0) throw new Error(`the limited server refused ${result.refusals} requests or events: the limits were reached, the figures compare nothing`);
    return report(result);
  } finally {
    for (const c of contenders) {
      await c.fans.stop();
      await c.senders.stop();
    }
    for (const c of contenders) await c.server.stop();
  }
}

function report(result: LimitsResult): PartResult<LimitsResult> {
  const table: string[][] = [['pass', 'server', 'CPU s / 1M deliveries', 'per-round range', 'deliveries/s', 'vs no limit']];
  for (const p of result.passes) {
    for (const s of [p.unlimited, p.limited]) {
      table.push([
        p.pass,
        s.server,
        s.cpuPerMillion.toFixed(3),
        `${s.cpuPerMillionRange[0].toFixed(3)}–${s.cpuPerMillionRange[1].toFixed(3)}`,
        Math.round(s.deliveriesPerSecond).toLocaleString('en-US'),
        `${s.ratioToReference.toFixed(3)}x`,
      ]);
    }
  }
  const budgets: Budget[] = result.passes.map((p) => ({ what: `${p.pass}: CPU with every limit set vs none`, value: p.ratio, limit: LIMIT, unit: 'x', pass: p.ratio <= LIMIT }));
  const notes = [
    `fan-out: ${result.sockets} sockets on ${CHANNEL}, ${result.events} events per round; client events: ${result.clientSockets} sockets on ${CLIENT_CHANNEL}, ${result.clientEvents} each per round, each delivered to the ${result.clientSockets - 1} others`,
    `limits set: ${Object.entries(result.limits).map(([k, v]) => `${k}=${v}`).join(', ')}; refusals counted: ${result.refusals}`,
  ];
  return { part: 'limits', title: 'Limits set but not reached, against none', table, budgets, notes, figures: result };
}
