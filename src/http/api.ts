import type { AppState, Apps } from '../apps';
import { channelKind, validApiChannelName } from '../protocol/channel-names';
import { HttpError } from '../protocol/errors';
import type { FanOut } from '../adapter/fan-out';
import { readBody } from './body';
import { writeJson } from './reply';
import type { Log } from '../log';
import type { PwsMetrics } from '../metrics/pws-metrics';
import type { Options } from '../options';
import { eventFrame } from '../protocol/frames';
import { verifyRequest } from './request-auth';
import type { Users } from '../channels/users';
import type { HttpRequest, HttpResponse, TemplatedApp } from '../uws';

/** What the REST API needs from the rest of the server. */
export interface HttpContext {
  apps: Apps;
  options: Options;
  fanOut: FanOut;
  users: Users;
  metrics: PwsMetrics | null;
  log: Log;
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

/** Registers the Pusher HTTP API routes under /apps/:appId. */
export function registerHttpApi(uws: TemplatedApp, ctx: HttpContext): void {
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
    uws[method](pattern, (res, req) => serve(ctx, res, req, method, paramCount, handler));
    uws.any(pattern, (res, req) => {
      // Still a call to that app: counted like any other answer, though its body is never read.
      const app = ctx.apps.findById(decodeComponent(req.getParameter(0) ?? '') ?? '');
      const sent = writeJson(res, 405, { error: `Method not allowed: use ${method.toUpperCase()}` });
      if (app !== undefined && ctx.metrics !== null) {
        ctx.metrics.httpCallsReceived.add(app.metricsSlot, 1);
        ctx.metrics.httpTransmittedBytes.add(app.metricsSlot, sent);
      }
    });
  }
}

function serve(ctx: HttpContext, res: HttpResponse, req: HttpRequest, method: 'get' | 'post', paramCount: number, handler: Handler): void {
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
    return;
  }
  const app = ctx.apps.findById(params[0]!);
  if (app === undefined) {
    writeJson(res, 404, { error: `Unknown app id "${params[0]}"` });
    return;
  }
  const slot = app.metricsSlot;
  ctx.metrics?.httpCallsReceived.add(slot, 1);
  const bodyPromise = method === 'post' ? readBody(res, contentLength, ctx.options.httpMaxRequestSizeInKb * 1024) : Promise.resolve(Buffer.alloc(0));
  bodyPromise
    .then((body) => {
      ctx.metrics?.httpReceivedBytes.add(slot, body.length);
      const query = parseQuery(queryString);
      verifyRequest(app.config, method.toUpperCase(), path, query, body);
      return handler(ctx, { app, params: params.slice(1) as string[], query, body });
    })
    .then(
      (result) => reply(ctx, res, slot, aborted, 200, result),
      (err: unknown) => {
        if (err instanceof HttpError) return reply(ctx, res, slot, aborted, err.status, { error: err.message });
        ctx.log.error(`REST ${method.toUpperCase()} ${path} failed: ${(err as Error)?.stack ?? err}`);
        reply(ctx, res, slot, aborted, 500, { error: 'Internal server error' });
      },
    );
}

function reply(ctx: HttpContext, res: HttpResponse, slot: number, aborted: boolean, status: number, body: unknown): void {
  if (aborted) return;
  const sent = writeJson(res, status, body);
  ctx.metrics?.httpTransmittedBytes.add(slot, sent);
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

function validateEvent(options: Options, raw: unknown, where: string, allowMany: boolean): ApiEvent {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new HttpError(400, `${where} must be a JSON object`);
  const { name, data, channel, channels, socket_id: socketId, info } = raw as Record<string, unknown>;
  if (typeof name !== 'string' || name === '') throw new HttpError(400, `${where}: "name" must be a non-empty string`);
  if (name.length > options.eventMaxNameLength) throw new HttpError(400, `${where}: event name is longer than ${options.eventMaxNameLength} characters`);
  if (typeof data !== 'string') throw new HttpError(400, `${where}: "data" must be a string (JSON-encode objects)`);
  if (Buffer.byteLength(data) > options.eventMaxSizeInKb * 1024) throw new HttpError(413, `${where}: event data is larger than ${options.eventMaxSizeInKb} KB`);
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
  if (targets.length > options.eventMaxChannelsAtOnce) throw new HttpError(400, `${where}: at most ${options.eventMaxChannelsAtOnce} channels per event`);
  for (const target of targets) checkChannelName(options, target, where);
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
function checkChannelName(options: Options, name: unknown, where: string): void {
  if (typeof name === 'string' && validApiChannelName(name, options.channelMaxNameLength)) return;
  // Not JSON.stringify for arrays and objects: they may nest deeper than it can recurse.
  const shown = typeof name === 'object' && name !== null ? (Array.isArray(name) ? '(an array)' : '(an object)') : JSON.stringify(name);
  throw new HttpError(400, `${where}: invalid channel name ${shown}`);
}

function parseInfo(info: string | undefined | null): string[] {
  if (info === undefined || info === null || info === '') return [];
  const attrs = info.split(',').map((a) => a.trim());
  for (const attr of attrs) {
    if (attr !== 'user_count' && attr !== 'subscription_count') throw new HttpError(400, `Unknown info attribute "${attr}" (valid: user_count, subscription_count)`);
  }
  return attrs;
}

function channelInfo(app: AppState, name: string, attrs: string[]): Record<string, number> {
  const channel = app.channels.get(name);
  const out: Record<string, number> = {};
  for (const attr of attrs) {
    if (attr === 'user_count') {
      if (channelKind(name) !== 'presence') throw new HttpError(400, `user_count is only available for presence channels, not ${name}`);
      out.user_count = channel?.members?.size ?? 0;
    } else {
      out.subscription_count = channel?.subscriptions ?? 0;
    }
  }
  return out;
}

// All of a call's events are published in this one synchronous turn, so uWS writes each socket once.
function publish(ctx: HttpContext, app: AppState, event: ApiEvent): void {
  const except = event.socketId === undefined ? undefined : app.sockets.get(event.socketId);
  for (const channel of event.channels) ctx.fanOut.publish(app, channel, eventFrame(event.name, channel, event.data), except);
}

function triggerEvent(ctx: HttpContext, call: Call): unknown {
  const event = validateEvent(ctx.options, parseJsonObject(call.body), 'event', true);
  if (event.info.length > 0) for (const channel of event.channels) channelInfo(call.app, channel, event.info);
  publish(ctx, call.app, event);
  if (event.info.length === 0) return {};
  const channels: Record<string, Record<string, number>> = keyedByName();
  for (const channel of event.channels) channels[channel] = channelInfo(call.app, channel, event.info);
  return { channels };
}

function triggerBatch(ctx: HttpContext, call: Call): unknown {
  const { batch } = parseJsonObject(call.body);
  if (!Array.isArray(batch)) throw new HttpError(400, '"batch" must be an array of events');
  if (batch.length === 0) throw new HttpError(400, '"batch" holds no events');
  if (batch.length > ctx.options.eventMaxBatchSize) throw new HttpError(400, `A batch may hold at most ${ctx.options.eventMaxBatchSize} events`);
  // Validate every event before publishing any, so a bad batch delivers nothing.
  const events = batch.map((raw, i) => validateEvent(ctx.options, raw, `batch[${i}]`, false));
  for (const event of events) if (event.info.length > 0) channelInfo(call.app, event.channels[0], event.info);
  for (const event of events) publish(ctx, call.app, event);
  if (events.every((e) => e.info.length === 0)) return {};
  return { batch: events.map((e) => channelInfo(call.app, e.channels[0], e.info)) };
}

function listChannels(ctx: HttpContext, call: Call): unknown {
  const prefix = call.query.get('filter_by_prefix') ?? '';
  const attrs = parseInfo(call.query.get('info'));
  if (attrs.includes('subscription_count')) throw new HttpError(400, 'info=subscription_count is not available on the channel list; ask a single channel');
  if (attrs.includes('user_count') && !prefix.startsWith('presence-')) {
    throw new HttpError(400, 'info=user_count requires filter_by_prefix=presence-');
  }
  const channels: Record<string, Record<string, number>> = keyedByName();
  for (const name of call.app.channels.keys()) {
    if (name.startsWith(prefix)) channels[name] = channelInfo(call.app, name, attrs);
  }
  return { channels };
}

function showChannel(ctx: HttpContext, call: Call): unknown {
  const name = call.params[0];
  checkChannelName(ctx.options, name, 'path');
  const attrs = parseInfo(call.query.get('info'));
  const channel = call.app.channels.get(name);
  return { occupied: channel !== undefined, ...channelInfo(call.app, name, attrs) };
}

function listUsers(ctx: HttpContext, call: Call): unknown {
  const name = call.params[0];
  checkChannelName(ctx.options, name, 'path');
  if (channelKind(name) !== 'presence') throw new HttpError(400, `Users can only be listed for presence channels, not ${name}`);
  const members = call.app.channels.get(name)?.members;
  return { users: members ? [...members.keys()].map((id) => ({ id })) : [] };
}

function terminateConnections(ctx: HttpContext, call: Call): unknown {
  ctx.users.terminate(call.app, call.params[0]);
  return {};
}

// No prototype: a channel named "__proto__" is valid and must be a key like any other.
function keyedByName<T>(): Record<string, T> {
  return Object.create(null);
}
