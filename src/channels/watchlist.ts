import type { AppState } from '../apps/app-state';
import type { Apps } from '../apps/apps';
import type { Broadcaster, ChannelState } from '../adapter/adapter';
import type { FanOut } from '../adapter/fan-out';
import { settle } from '../adapter/settle';
import type { Log } from '../log';
import type { Counter } from '../metrics/counter';
import { seriesPerApp, type PwsMetrics } from '../metrics/pws-metrics';
import { watchlistChannel } from '../protocol/channel-names';
import { ErrorCode, PusherError } from '../protocol/errors';
import { errorFrame, watchlistEvents } from '../protocol/frames';
import type { Socket } from '../ws/socket';

/** Pusher's limit: of a longer watchlist, the first this many user ids are watched. */
export const WATCHLIST_MAX = 100;

/**
 * Watchlist events (apps with enableWatchlistEvents): a user is online while it is signed in on
 * at least one socket anywhere in the cluster. The ChannelState decides the first-online and
 * last-offline edges on the cluster's counts; an edge is published once on the user's
 * `#watchlist-<id>` server channel, which every socket watching that user has joined, on any node.
 * A socket that signs in with `user_data.watchlist` gets the current state of its list first.
 * Apps without the feature never get here: their AppState has no watchlist tables.
 */
export class Watchlist {
  /** `pusher_internal:watchlist_events` frames sent by this node, by app; made with the first app using the feature (none with metrics off). */
  private sent: Counter | null = null;

  constructor(
    apps: Apps,
    private readonly fanOut: FanOut,
    private readonly broadcaster: Broadcaster,
    private readonly state: ChannelState,
    metrics: PwsMetrics | null,
    private readonly log: Log,
  ) {
    if (metrics === null) return;
    const watcher = (app: AppState) => {
      if (app.watched !== null) this.sent ??= sentCounter(metrics, apps);
    };
    apps.watch({ added: watcher, changed: watcher });
  }

  private countSent(app: AppState): void {
    this.sent?.add(app.metricsSlot, 1);
  }

  /** The user's first socket on this node signed in: announces `online` when no node had one. */
  cameOnline(app: AppState, userId: string): void {
    this.announceIf(app, userId, this.state.signedIn(app, userId), true);
  }

  /** The user's last socket on this node is gone: announces `offline` when no node has one. */
  wentOffline(app: AppState, userId: string): void {
    this.announceIf(app, userId, this.state.signedOut(app, userId), false);
  }

  /**
   * Tells every socket watching the user, on every node, that it came online or went offline, as
   * decided at `version` (0: unordered), so a node never delivers it after a newer change.
   */
  announce(app: AppState, userId: string, online: boolean, version = 0): void {
    this.broadcaster.publishEdge(app, watchlistChannel(userId), '', version, online ? watchlistEvents([userId], []) : watchlistEvents([], [userId]));
    this.countSent(app);
  }

  /**
   * A socket signed in with `list` (its user_data.watchlist). It starts receiving the watched
   * users' changes at once, so none is missed; once sign-in is `confirmed` (signin_success sent)
   * and this node receives those changes from every node, it gets any complaint about the list
   * and then the current state of the list, followed by the changes this node delivered meanwhile
   * that are newer than that state (which would otherwise be undone by it).
   */
  watch(ws: Socket, list: unknown, confirmed: void | Promise<void>): void | Promise<void> {
    const socket = ws.getUserData();
    const app = socket.app;
    const { ids, errors } = parseWatchlist(list);
    const waits: Promise<void>[] = confirmed instanceof Promise ? [confirmed] : [];
    // Changes of the watched users delivered before the state is read are sent again after it.
    const holds: (object | null)[] = [];
    if (ids.length > 0) {
      app.watchlists!.set(ws, ids);
      for (const id of ids) {
        const listening = this.join(ws, app, id);
        if (listening !== null) waits.push(listening);
        holds.push(this.broadcaster.holdEdges(app, watchlistChannel(id), app.watched!.get(id)!.watchers === 1));
      }
    }
    const release = (version: number, to: Socket | null) => {
      for (const hold of holds) this.broadcaster.releaseEdges(hold, version, to);
    };
    // A sign-in again (or a close) meanwhile replaced or dropped this list: its state is not wanted.
    const current = () => socket.ended === null && (ids.length === 0 || app.watchlists!.get(ws) === ids);
    const initialState = (): void | Promise<void> => {
      if (!current()) return release(0, null);
      for (const err of errors) this.fanOut.send(ws, errorFrame(err.code, err.message));
      if (ids.length === 0) return;
      return settle(this.state.online(app, ids), ({ online, version }) => {
        if (!current()) return release(version, null);
        this.fanOut.send(ws, watchlistEvents(ids.filter((id) => online.has(id)), ids.filter((id) => !online.has(id))));
        this.countSent(app);
        release(version, ws);
      });
    };
    return waits.length === 0 ? initialState() : Promise.all(waits).then(initialState);
  }

  /** The socket stops watching its list (it closed, or signs in again). */
  unwatch(ws: Socket): void {
    const socket = ws.getUserData();
    const app = socket.app;
    const ids = app.watchlists!.get(ws);
    if (ids === undefined) return;
    app.watchlists!.delete(ws);
    for (const id of ids) {
      if (socket.ended === null) this.fanOut.leave(ws, app, watchlistChannel(id));
      const watched = app.watched!.get(id)!;
      if (--watched.watchers === 0) {
        app.watched!.delete(id);
        this.broadcaster.unlisten(app, watchlistChannel(id));
      }
    }
  }

  // Joins the user's channel; the node's first watcher of it also starts receiving it from the
  // other nodes. Returns what the watcher must wait for before it reads the state, or null.
  private join(ws: Socket, app: AppState, userId: string): Promise<void> | null {
    let watched = app.watched!.get(userId);
    if (watched === undefined) {
      const entry = (watched = { watchers: 0, listening: null as Promise<void> | null });
      app.watched!.set(userId, entry);
      const listening = this.broadcaster.listen(app, watchlistChannel(userId));
      if (listening !== undefined) {
        const pending: Promise<void> = listening.then(() => {
          if (entry.listening === pending) entry.listening = null;
        });
        entry.listening = pending;
      }
    }
    watched.watchers++;
    this.fanOut.join(ws, app, watchlistChannel(userId));
    return watched.listening;
  }

  private announceIf(app: AppState, userId: string, edge: number | false | Promise<number | false>, online: boolean): void {
    settle(edge, (version) => {
      if (version !== false) this.announce(app, userId, online, version);
    })?.catch((err) => this.log.error(`watchlist ${online ? 'online' : 'offline'} of ${userId} failed: ${(err as Error)?.stack ?? err}`));
  }
}

/**
 * The distinct user ids of a watchlist, in order, at most WATCHLIST_MAX of them, and what the
 * signing-in socket is told about the rest. Sign-in succeeds whatever the list holds.
 */
export function parseWatchlist(list: unknown): { ids: string[]; errors: PusherError[] } {
  if (list === undefined) return { ids: [], errors: [] };
  if (!Array.isArray(list)) return { ids: [], errors: [new PusherError(null, 'user_data.watchlist must be an array of user ids: nothing is watched')] };
  const errors: PusherError[] = [];
  const valid = list.filter((id): id is string => typeof id === 'string' && id !== '');
  if (valid.length < list.length) errors.push(new PusherError(null, `user_data.watchlist: ${list.length - valid.length} entries are not user ids (non-empty strings) and are not watched`));
  const distinct = [...new Set(valid)];
  if (distinct.length > WATCHLIST_MAX) {
    errors.push(new PusherError(ErrorCode.watchlistTooLong, `Watchlist has ${distinct.length} user ids: only the first ${WATCHLIST_MAX} are watched`));
  }
  return { ids: distinct.slice(0, WATCHLIST_MAX), errors };
}

// `<prefix>watchlist_events_total{app_id}`, with a series for every app in the server's order so
// that an app's metricsSlot is its slot here too (zero for apps without the feature).
function sentCounter(metrics: PwsMetrics, apps: Apps): Counter {
  const family = metrics.registry.counter({
    name: `${metrics.prefix}watchlist_events_total`,
    help: "Watchlist events frames this node sent: an initial state to a socket signing in, or a user's online or offline change, published once to whoever watches that user.",
    labelNames: ['app_id'],
  });
  seriesPerApp(family, apps);
  return family;
}
