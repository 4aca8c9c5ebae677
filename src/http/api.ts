import type { AppState } from '../apps/app-state';
import type { Apps } from '../apps/apps';
import type { AppLookup } from '../apps/app-sync';
import { channelKind, isCacheChannel, validApiChannelName } from '../protocol/channel-names';
import { HttpError } from '../protocol/errors';
import type { Broadcaster, ChannelState, ChannelSummary } from '../adapter/adapter';
import type { CacheStore, Cached } from '../adapter/cache-store';
import { readBody } from './body';
import { writeBody, writeJson } from './reply';
import type { Refusals } from '../limits/refusals';
import type { RateLimit, RateLimiter, Verdict } from '../limits/rate-limiter';
import type { Log } from '../log';
import type { PwsMetrics } from '../metrics/pws-metrics';
import type { AppConfig, Options } from '../options';
import type { Outbox } from '../cluster/outbox';
import type { ConsoleTap } from '../console/tap';
import { eventFrame } from '../protocol/frames';
import { verifyRequest } from './request-auth';
import type { HttpRequest, HttpResponse, TemplatedApp } from '../uws';

/** What the REST API needs from the rest of the server. */
export interface HttpContext {
  apps: Apps;
  /** Apps from a database: asked for an id memory does not know. Null with the config file's apps. */
  lookup: AppLookup | null;
  options: Options;
  broadcaster: Broadcaster;
  state: ChannelState;
  limiter: RateLimiter;
  refusals: Refusals | null;
  cache: CacheStore;
  metrics: PwsMetrics | null;
  log: Log;
  /** ADAPTER_DRIVER=redis: where frames for other nodes wait while Redis is unreachable. */
  outbox: Outbox | null;
  /** The console's event log; null with CONSOLE_ENABLED off. */
  console: ConsoleTap | null;
}

/** A validated API call, handed to a route handler after signing checks. */
interface Call {
  app: AppState;
  params: string[];
  query: URLSearchParams;
  body: Buffer;
}

type Handler = (ctx: HttpContext, call: Call) => unknown;

/** An event as the API receives it, after validation. */
interface ApiEvent {
  name: string;
  data: string;
  channels: string[];
  socketId: string | undefined;
  info: string[];
}

const SOCKET_ID = /^\d+\.\d+$/;

/** Triggers an event as POST /apps/:appId/events does, after its signature was checked. */
export type ApiTrigger = (app: AppState, body: Buffer) => Promise<unknown>;

/** Registers the Pusher HTTP API routes under /apps/:appId; returns their trigger, for the console's event sender. */
export function registerHttpApi(uws: TemplatedApp, ctx: HttpContext): ApiTrigger {
  const routes: [string, 'get' | 'post', Handler][] = [
    ['/apps/:appId/events', 'post', triggerEvent],
    ['/apps/:appId/batch_events', 'post', triggerBatch],
    ['/apps/:appId/channels', 'get', listChannels],
    ['/apps/:appId/channels/:channel', 'get', showChannel],
    ['/apps/:appId/channels/:channel/users', 'get', listUsers],
    ['/apps/:appId/users/:userId/terminate_connections', 'post', terminateConnections],
  ];
  for (const [pattern, method, handler] of routes) {
    const paramCount = pattern.split(':').length - 1;
    uws[method](pattern, (res, req) => serve(ctx, res, req, method, paramCount, handler, pattern));
    uws.any(pattern, (res, req) => {
      // Still a call to that app: counted like any other answer, though its body is never read.
      const app = ctx.apps.findById(decodeComponent(req.getParameter(0) ?? '') ?? '');
      const sent = writeJson(res, 405, { error: `Method not allowed: use ${method.toUpperCase()}` });
      ctx.metrics?.observeRequest(pattern, 405, 0);
      if (app !== undefined && ctx.metrics !== null) {
        ctx.metrics.httpCallsReceived.add(app.metricsSlot, 1);
        ctx.metrics.httpTransmittedBytes.add(app.metricsSlot, sent);
      }
    });
  }
  return (app, body) =>
    triggerEvent(ctx, { app, params: [], query: new URLSearchParams(), body }).then((result) => {
      if (result instanceof LimitRefusal) throw new HttpError(429, `Rate limit reached: at most ${result.verdict.limit} events (× channels) triggered per second for this app`);
      return result;
    });
}

/** Where an answer is timed: the route's pattern and when its request arrived (0 with metrics off). */
interface Timing {
  route: string;
  start: number;
}

function serve(ctx: HttpContext, res: HttpResponse, req: HttpRequest, method: 'get' | 'post', paramCount: number, handler: Handler, route: string): void {
  const timing: Timing = { route, start: ctx.metrics === null ? 0 : performance.now() };
  // uWS invalidates `req` when this function returns: read everything now.
  const path = req.getUrl();
  const queryString = req.getQuery() ?? '';
  const rawParams: string[] = [];
  for (let i = 0; i < paramCount; i++) rawParams.push(req.getParameter(i) ?? '');
  const contentLength = req.getHeader('content-length');
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  const params = rawParams.map(decodeComponent);
  const malformed = params.indexOf(null);
  if (malformed >= 0) {
    writeJson(res, 400, { error: `Malformed URL parameter ${JSON.stringify(rawParams[malformed])}` });
    answered(ctx, timing, 400);
    return;
  }
  const id = params[0]!;
  const known = ctx.apps.findById(id);
  if (known === undefined && ctx.lookup === null) {
    writeJson(res, 404, { error: `Unknown app id "${id}"` });
    answered(ctx, timing, 404);
    return;
  }
  // Read from now on, even while the app store is asked: uWS drops a body nobody reads at once.
  const bodyPromise = method === 'post' ? readBody(res, contentLength, ctx.options.httpMaxRequestSizeInKb * 1024) : Promise.resolve(Buffer.alloc(0));
  const serveApp = (app: AppState) => {
    const slot = app.metricsSlot;
    ctx.metrics?.httpCallsReceived.add(slot, 1);
    bodyPromise
      .then((body) => {
        ctx.metrics?.httpReceivedBytes.add(slot, body.length);
        if (!app.config.enabled) throw new HttpError(403, 'App is disabled');
        const query = parseQuery(queryString);
        verifyRequest(app.config, method.toUpperCase(), path, query, body);
        const call = { app, params: params.slice(1) as string[], query, body };
        if (method === 'get' && app.config.maxReadRequestsPerSecond >= 0) {
          return admit(ctx, app, 'read_requests', 1).then((refused) => refused ?? handler(ctx, call));
        }
        return handler(ctx, call);
      })
      .then(
        (result) => {
          if (result instanceof LimitRefusal) return refuse(ctx, res, slot, aborted, timing, result);
          reply(ctx, res, slot, aborted, timing, 200, result);
        },
        (err: unknown) => {
          if (err instanceof HttpError) return reply(ctx, res, slot, aborted, timing, err.status, { error: err.message }, err.headers);
          ctx.log.error(`REST ${method.toUpperCase()} ${path} failed: ${(err as Error)?.stack ?? err}`);
          reply(ctx, res, slot, aborted, timing, 500, { error: 'Internal server error' });
        },
      );
  };
  if (known !== undefined) return serveApp(known);
  // Apps from a database: an id memory does not know is asked for (and remembered when unknown).
  void ctx.lookup!.byId(id).then((found) => {
    if (found !== null && found !== 'unavailable') return serveApp(found);
    bodyPromise.catch(() => undefined);
    if (aborted) return;
    if (found === null) writeJson(res, 404, { error: `Unknown app id "${id}"` });
    else writeBody(res, 503, 'application/json', JSON.stringify({ error: 'The app store does not answer: try again' }), { 'Retry-After': '1' });
    answered(ctx, timing, found === null ? 404 : 503);
  });
}

/** A request over a rate limit: answered 429, returned rather than thrown (no Error, no stack, at the abuser's rate). */
class LimitRefusal {
  constructor(
    readonly limit: RateLimit,
    readonly verdict: Verdict,
  ) {}
}

/** Counts `cost` against the app's `limit`; null when the request may go on. */
async function admit(ctx: HttpContext, app: AppState, limit: RateLimit, cost: number): Promise<LimitRefusal | null> {
  const verdict = await ctx.limiter.consume(app, limit, cost);
  if (verdict.allowed) return null;
  ctx.refusals?.count(app, limit);
  return new LimitRefusal(limit, verdict);
}

function refuse(ctx: HttpContext, res: HttpResponse, slot: number, aborted: boolean, timing: Timing, refusal: LimitRefusal): void {
  if (aborted) return;
  const { limit, retryAfter, remaining } = refusal.verdict;
  const what = refusal.limit === 'backend_events' ? 'events (× channels) triggered' : 'read requests';
  const body = JSON.stringify({ error: `Rate limit reached: at most ${limit} ${what} per second for this app (${refusal.limit}); retry after ${retryAfter} s` });
  const headers = { 'Retry-After': String(retryAfter), 'X-RateLimit-Limit': String(limit), 'X-RateLimit-Remaining': String(remaining) };
  const sent = writeBody(res, 429, 'application/json', body, headers);
  ctx.metrics?.httpTransmittedBytes.add(slot, sent);
  answered(ctx, timing, 429);
}

function reply(ctx: HttpContext, res: HttpResponse, slot: number, aborted: boolean, timing: Timing, status: number, body: unknown, headers?: Record<string, string>): void {
  if (aborted) return;
  const sent = headers === undefined ? writeJson(res, status, body) : writeBody(res, status, 'application/json', JSON.stringify(body), headers);
  ctx.metrics?.httpTransmittedBytes.add(slot, sent);
  answered(ctx, timing, status);
}

// An answer was written: its duration goes to the route's histogram (aborted requests have none).
function answered(ctx: HttpContext, timing: Timing, status: number): void {
  ctx.metrics?.observeRequest(timing.route, status, (performance.now() - timing.start) / 1000);
}

// decodeURIComponent, or null for a malformed escape.
function decodeComponent(value: string): string | null {
  try {
    return decodeURIComponent(value);
  } catch {
    return null;
  }
}

/**
 * The query as Pusher's SDKs mean it: they sign values raw and do not form-encode them, so `+` is
 * a plus sign here, not the space URLSearchParams would make of it.
 */
function parseQuery(raw: string): URLSearchParams {
  const query = new URLSearchParams();
  for (const pair of raw.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = decodeComponent(eq < 0 ? pair : pair.slice(0, eq));
    const value = decodeComponent(eq < 0 ? '' : pair.slice(eq + 1));
    if (name === null || value === null) throw new HttpError(400, `Malformed query parameter ${JSON.stringify(pair.slice(0, 100))}`);
    query.append(name, value);
  }
  return query;
}

function parseJsonObject(body: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'The request body is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new HttpError(400, 'The request body must be a JSON object');
  return parsed as Record<string, unknown>;
}

function validateEvent(app: AppConfig, raw: unknown, where: string, allowMany: boolean): ApiEvent {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new HttpError(400, `${where} must be a JSON object`);
  const { name, data, channel, channels, socket_id: socketId, info } = raw as Record<string, unknown>;
  if (typeof name !== 'string' || name === '') throw new HttpError(400, `${where}: "name" must be a non-empty string`);
  if (name.length > app.maxEventNameLength) throw new HttpError(400, `${where}: event name is longer than ${app.maxEventNameLength} characters`);
  if (typeof data !== 'string') throw new HttpError(400, `${where}: "data" must be a string (JSON-encode objects)`);
  if (Buffer.byteLength(data) > app.maxEventPayloadInKb * 1024) throw new HttpError(413, `${where}: event data is larger than ${app.maxEventPayloadInKb} KB`);
  let targets: unknown[];
  if (allowMany && channels !== undefined) {
    if (!Array.isArray(channels)) throw new HttpError(400, `${where}: "channels" must be an array of channel names`);
    targets = channels;
  } else if (channel !== undefined) {
    targets = [channel];
  } else {
    throw new HttpError(400, `${where}: ${allowMany ? '"channels" or "channel"' : '"channel"'} is required`);
  }
  if (targets.length === 0) throw new HttpError(400, `${where}: no channel given`);
  if (targets.length > app.maxEventChannelsAtOnce) throw new HttpError(400, `${where}: at most ${app.maxEventChannelsAtOnce} channels per event`);
  for (const target of targets) checkChannelName(app, target, where);
  const names = targets as string[];
  if (names.length > 1 && names.some((n) => channelKind(n) === 'encrypted')) {
    throw new HttpError(400, `${where}: an event for an encrypted channel must target that one channel only`);
  }
  if (socketId !== undefined && (typeof socketId !== 'string' || !SOCKET_ID.test(socketId))) {
    throw new HttpError(400, `${where}: "socket_id" must look like 1234.5678`);
  }
  if (info !== undefined && typeof info !== 'string') throw new HttpError(400, `${where}: "info" must be a comma-separated string`);
  return { name, data, channels: names, socketId, info: parseInfo(info) };
}

// Every entry point that names a channel answers a bad name with this same 400.
function checkChannelName(app: AppConfig, name: unknown, where: string): void {
  if (typeof name === 'string' && validApiChannelName(name, app.maxChannelNameLength)) return;
  // Not JSON.stringify for arrays and objects: they may nest deeper than it can recurse.
  const shown = typeof name === 'object' && name !== null ? (Array.isArray(name) ? '(an array)' : '(an object)') : JSON.stringify(name);
  throw new HttpError(400, `${where}: invalid channel name ${shown}`);
}

function parseInfo(info: string | undefined | null, valid = ['user_count', 'subscription_count']): string[] {
  if (info === undefined || info === null || info === '') return [];
  const attrs = info.split(',').map((a) => a.trim());
  for (const attr of attrs) {
    if (!valid.includes(attr)) throw new HttpError(400, `Unknown info attribute "${attr}" (valid: ${valid.join(', ')})`);
  }
  return attrs;
}

// Refuses an attribute the channel cannot have before anything is published or read.
function checkInfo(name: string, attrs: string[]): void {
  if (attrs.includes('cache') && !isCacheChannel(name)) throw new HttpError(400, `cache is only available for cache channels, not ${name}`);
  if (attrs.includes('user_count') && channelKind(name) !== 'presence') {
    throw new HttpError(400, `user_count is only available for presence channels, not ${name}`);
  }
}

function infoOf(summary: ChannelSummary | null, attrs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const attr of attrs) {
    if (attr === 'user_count') out.user_count = summary?.userCount ?? 0;
    else if (attr === 'subscription_count') out.subscription_count = summary?.subscriptionCount ?? 0;
  }
  return out;
}

async function channelInfo(ctx: HttpContext, app: AppState, name: string, attrs: string[]): Promise<Record<string, number>> {
  return infoOf(await ctx.state.channel(app, name), attrs);
}

// Every event of a call is published in this one synchronous turn, so uWS writes each socket
// once; then the cache channels keep their last event (in Redis, before the call is answered).
async function publish(ctx: HttpContext, app: AppState, events: ApiEvent[]): Promise<void> {
  if (ctx.outbox?.holding) checkKept(ctx.outbox, events);
  const kept: Promise<void>[] = [];
  for (const event of events) {
    for (const channel of event.channels) {
      const frame = eventFrame(event.name, channel, event.data);
      ctx.broadcaster.publish(app, channel, frame, event.socketId);
      ctx.console?.apiMessage(app, channel, event.name, event.data);
      if (isCacheChannel(channel)) {
        const keeping = ctx.cache.set(app, channel, frame);
        if (keeping !== undefined) kept.push(keeping);
      }
    }
  }
  await Promise.all(kept);
}

// While Redis is unreachable, frames for the other nodes wait in the outbox: a call whose frames
// it cannot take is refused before anything is delivered, on any node, so a retry is safe.
function checkKept(outbox: Outbox, events: ApiEvent[]): void {
  let count = 0;
  let bytes = 0;
  for (const event of events) {
    for (const channel of event.channels) {
      count++;
      // The frame and its envelope (kind, origin node, excluded socket, time) with room to spare.
      bytes += Buffer.byteLength(eventFrame(event.name, channel, event.data)) + 128;
    }
  }
  if (outbox.admits(count, bytes)) return;
  const retryAfter = outbox.retryAfterSeconds();
  throw new HttpError(503, `Redis is unreachable and the frames waiting for the other nodes fill this node's outbox; nothing was delivered, retry after ${retryAfter} s`, { 'Retry-After': String(retryAfter) });
}

// Counts are read before publishing (which changes none): a read that fails must come before
// any delivery, or the caller's retry would deliver twice.
async function triggerEvent(ctx: HttpContext, call: Call): Promise<unknown> {
  const event = validateEvent(call.app.config, parseJsonObject(call.body), 'event', true);
  for (const channel of event.channels) checkInfo(channel, event.info);
  if (call.app.config.maxBackendEventsPerSecond >= 0) {
    const refused = await admit(ctx, call.app, 'backend_events', event.channels.length);
    if (refused !== null) return refused;
  }
  let channels: Record<string, Record<string, number>> | null = null;
  if (event.info.length > 0) {
    channels = keyedByName();
    for (const channel of event.channels) channels[channel] = await channelInfo(ctx, call.app, channel, event.info);
  }
  await publish(ctx, call.app, [event]);
  return channels === null ? {} : { channels };
}

async function triggerBatch(ctx: HttpContext, call: Call): Promise<unknown> {
  const { batch } = parseJsonObject(call.body);
  if (!Array.isArray(batch)) throw new HttpError(400, '"batch" must be an array of events');
  if (batch.length === 0) throw new HttpError(400, '"batch" holds no events');
  if (batch.length > call.app.config.maxEventBatchSize) throw new HttpError(400, `A batch may hold at most ${call.app.config.maxEventBatchSize} events`);
  // Validate every event before publishing any, so a bad batch delivers nothing.
  const events = batch.map((raw, i) => validateEvent(call.app.config, raw, `batch[${i}]`, false));
  for (const event of events) checkInfo(event.channels[0], event.info);
  if (call.app.config.maxBackendEventsPerSecond >= 0) {
    // Billed like Pusher: each event once per channel; refused whole, nothing delivered.
    const refused = await admit(ctx, call.app, 'backend_events', events.length);
    if (refused !== null) return refused;
  }
  const info = events.every((e) => e.info.length === 0) ? null : await Promise.all(events.map((e) => channelInfo(ctx, call.app, e.channels[0], e.info)));
  await publish(ctx, call.app, events);
  return info === null ? {} : { batch: info };
}

async function listChannels(ctx: HttpContext, call: Call): Promise<unknown> {
  const prefix = call.query.get('filter_by_prefix') ?? '';
  const attrs = parseInfo(call.query.get('info'));
  if (attrs.includes('subscription_count')) throw new HttpError(400, 'info=subscription_count is not available on the channel list; ask a single channel');
  if (attrs.includes('user_count') && !prefix.startsWith('presence-')) {
    throw new HttpError(400, 'info=user_count requires filter_by_prefix=presence-');
  }
  const channels: Record<string, Record<string, number>> = keyedByName();
  for (const [name, summary] of await ctx.state.channels(call.app, prefix, attrs.length > 0)) channels[name] = infoOf(summary, attrs);
  return { channels };
}

async function showChannel(ctx: HttpContext, call: Call): Promise<unknown> {
  const name = call.params[0];
  checkChannelName(call.app.config, name, 'path');
  const attrs = parseInfo(call.query.get('info'), ['user_count', 'subscription_count', 'cache']);
  checkInfo(name, attrs);
  const summary = await ctx.state.channel(call.app, name);
  const out: Record<string, unknown> = { occupied: summary !== null, ...infoOf(summary, attrs) };
  if (attrs.includes('cache')) out.cache = cacheInfo(await ctx.cache.get(call.app, name));
  return out;
}

// The REST API's cache attribute: the cached event's data and its seconds left, or null.
function cacheInfo(cached: Cached | null): { data: unknown; ttl: number } | null {
  return cached === null ? null : { data: (JSON.parse(cached.frame) as { data: unknown }).data, ttl: cached.ttlSeconds };
}

async function listUsers(ctx: HttpContext, call: Call): Promise<unknown> {
  const name = call.params[0];
  checkChannelName(call.app.config, name, 'path');
  if (channelKind(name) !== 'presence') throw new HttpError(400, `Users can only be listed for presence channels, not ${name}`);
  const members = await ctx.state.members(call.app, name);
  return { users: [...members.keys()].map((id) => ({ id })) };
}

function terminateConnections(ctx: HttpContext, call: Call): unknown {
  ctx.broadcaster.terminateUser(call.app, call.params[0]);
  return {};
}

// No prototype: a channel named "__proto__" is valid and must be a key like any other.
function keyedByName<T>(): Record<string, T> {
  return Object.create(null);
}
