import type { Apps } from '../apps/apps';
import type { ApiTrigger } from '../http/api';
import { readBody } from '../http/body';
import { writeBody, writeJson } from '../http/reply';
import type { ChannelState } from '../adapter/adapter';
import { HttpError } from '../protocol/errors';
import type { HttpRequest, HttpResponse, TemplatedApp } from '../uws';
import { LoginLimiter } from './login-limiter';
import type { SampleRings } from './samples';
import { Sessions, type Session } from './sessions';
import type { Asset } from './static-files';
import type { ConsoleStreams } from './streams';

/** What the console's routes need from the rest of the server. */
export interface RoutesContext {
  apps: Apps;
  state: ChannelState;
  sessions: Sessions;
  streams: ConsoleStreams;
  samples: SampleRings;
  assets: Map<string, Asset>;
  trigger: ApiTrigger;
  /** Served over TLS: the cookie gets Secure. */
  secure: boolean;
}

// The pages load only their own scripts and styles, and no site may frame them.
const PAGE_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};
const MAX_FORM_BYTES = 4096;
const MAX_SEND_BYTES = 128 * 1024;

/**
 * The console's routes under /console: the login page or the console itself, their assets, the
 * login and logout forms, and the JSON and event-stream API the page uses. Every API route
 * needs a session; the ones that change something also need its CSRF token.
 */
export function registerConsoleRoutes(uws: TemplatedApp, ctx: RoutesContext): void {
  const limiter = new LoginLimiter();

  uws.get('/console', (res, req) => {
    const session = ctx.sessions.find(req.getHeader('cookie'), Date.now());
    if (session === null) {
      const failed = /(^|&)login=failed(&|$)/.test(req.getQuery() ?? '');
      const page = ctx.assets.get('login.html')!.body.toString('utf8').replace('<!--error-->', failed ? '<p class="error" role="alert" data-testid="login-error">Wrong password.</p>' : '');
      writeBody(res, 200, 'text/html; charset=utf-8', page, PAGE_HEADERS);
      return;
    }
    const page = ctx.assets.get('console.html')!.body.toString('utf8').replace('{{csrf}}', session.csrf);
    writeBody(res, 200, 'text/html; charset=utf-8', page, PAGE_HEADERS);
  });

  uws.get('/console/assets/:file', (res, req) => {
    const asset = ctx.assets.get(req.getParameter(0) ?? '');
    if (asset === undefined) writeJson(res, 404, { error: 'No such console file' });
    else writeBody(res, 200, asset.type, asset.body, { 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-cache' });
  });

  uws.post('/console/login', (res, req) => {
    const address = Buffer.from(res.getRemoteAddressAsText()).toString();
    const contentLength = req.getHeader('content-length');
    const aborted = onAborted(res);
    const now = Date.now();
    const wait = limiter.retryAfter(address, now);
    if (wait > 0) {
      writeBody(res, 429, 'text/plain; charset=utf-8', `Too many failed logins: try again in ${wait} s\n`, { 'Retry-After': String(wait) });
      return;
    }
    limiter.attempted(address, now);
    readBody(res, contentLength, MAX_FORM_BYTES).then(
      (body) => {
        if (aborted.yes) return;
        const password = new URLSearchParams(body.toString('utf8')).get('password') ?? '';
        if (!ctx.sessions.passwordMatches(password)) {
          redirect(res, '/console?login=failed');
          return;
        }
        limiter.succeeded(address);
        redirect(res, '/console', Sessions.cookie(ctx.sessions.open(Date.now()), ctx.secure));
      },
      (err) => answerError(res, aborted, err),
    );
  });

  uws.post('/console/logout', (res, req) => {
    const cookie = req.getHeader('cookie');
    if (authorized(ctx, res, req, true) === null) return;
    ctx.sessions.close(cookie);
    redirect(res, '/console', Sessions.clearedCookie());
  });

  uws.get('/console/api/apps', (res, req) => {
    if (authorized(ctx, res, req, false) === null) return;
    // Ids and keys only, read afresh (apps may change at run time); a secret never leaves the server.
    writeJson(res, 200, { apps: [...ctx.apps.all()].map((app) => ({ id: app.config.id, key: app.config.key })) });
  });

  uws.get('/console/api/stream', (res, req) => {
    const session = authorized(ctx, res, req, false);
    if (session === null) return;
    const app = ctx.apps.findById(new URLSearchParams(req.getQuery() ?? '').get('app') ?? '');
    if (app === undefined) {
      writeJson(res, 404, { error: 'Unknown app id' });
      return;
    }
    ctx.streams.add(res, session, app.config.id, ctx.samples.of(app.config.id));
  });

  uws.get('/console/api/members', (res, req) => {
    if (authorized(ctx, res, req, false) === null) return;
    const query = new URLSearchParams(req.getQuery() ?? '');
    const app = ctx.apps.findById(query.get('app') ?? '');
    const channel = query.get('channel') ?? '';
    const aborted = onAborted(res);
    if (app === undefined || !channel.startsWith('presence-')) {
      writeJson(res, 400, { error: 'Give a known app and a presence channel' });
      return;
    }
    Promise.resolve(ctx.state.members(app, channel)).then(
      (members) => {
        if (!aborted.yes) writeJson(res, 200, { members: [...members].map(([id, info]) => ({ id, info })) });
      },
      (err) => answerError(res, aborted, err),
    );
  });

  uws.post('/console/api/send', (res, req) => {
    const contentLength = req.getHeader('content-length');
    if (authorized(ctx, res, req, true) === null) return;
    const aborted = onAborted(res);
    readBody(res, contentLength, MAX_SEND_BYTES)
      .then((body) => {
        const { app: appId, channel, event, data } = parseSend(body);
        const app = ctx.apps.findById(appId);
        if (app === undefined) throw new HttpError(404, `Unknown app id "${appId}"`);
        if (!app.config.enabled) throw new HttpError(403, 'App is disabled');
        // Through the REST API's own trigger: the same validation, limits, cache and cluster delivery.
        return ctx.trigger(app, Buffer.from(JSON.stringify({ name: event, channel, data })));
      })
      .then(
        () => {
          if (!aborted.yes) writeJson(res, 200, { sent: true });
        },
        (err) => answerError(res, aborted, err),
      );
  });
}

/** The request's session, or null after answering 401 (no session) or 403 (CSRF token missing or wrong). */
function authorized(ctx: RoutesContext, res: HttpResponse, req: HttpRequest, changes: boolean): Session | null {
  const session = ctx.sessions.find(req.getHeader('cookie'), Date.now());
  if (session === null) {
    writeJson(res, 401, { error: 'Log in to the console first' });
    return null;
  }
  if (changes && !Sessions.csrfMatches(session, req.getHeader('x-csrf-token'))) {
    writeJson(res, 403, { error: 'Missing or wrong CSRF token' });
    return null;
  }
  return session;
}

function parseSend(body: Buffer): { app: string; channel: string; event: string; data: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'The request body is not valid JSON');
  }
  const { app, channel, event, data } = (parsed ?? {}) as Record<string, unknown>;
  if (typeof app !== 'string' || typeof channel !== 'string' || typeof event !== 'string' || typeof data !== 'string') {
    throw new HttpError(400, 'Give app, channel, event and data, all strings');
  }
  try {
    JSON.parse(data);
  } catch {
    throw new HttpError(400, 'The event data must be JSON');
  }
  return { app, channel, event, data };
}

function onAborted(res: HttpResponse): { yes: boolean } {
  const aborted = { yes: false };
  res.onAborted(() => {
    aborted.yes = true;
  });
  return aborted;
}

function answerError(res: HttpResponse, aborted: { yes: boolean }, err: unknown): void {
  if (aborted.yes) return;
  if (err instanceof HttpError) writeJson(res, err.status, { error: err.message });
  else writeJson(res, 500, { error: `Internal error: ${(err as Error)?.message ?? err}` });
}

function redirect(res: HttpResponse, location: string, cookie?: string): void {
  res.cork(() => {
    res.writeStatus('303 See Other').writeHeader('Location', location).writeHeader('Cache-Control', 'no-store');
    if (cookie !== undefined) res.writeHeader('Set-Cookie', cookie);
    res.end();
  });
}
