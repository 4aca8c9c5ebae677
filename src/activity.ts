import type { Apps } from './apps';
import { ErrorCode } from './errors';
import type { FanOut } from './fan-out';
import type { Options } from './options';
import { PING_FRAME, errorFrame } from './protocol';

/**
 * One timer for all sockets (not one per socket): pings sockets silent past the activity timeout,
 * closes those that do not answer with 4201, and closes sockets of apps requiring user
 * authentication that have not signed in in time with 4009.
 */
export class ActivityMonitor {
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly apps: Apps,
    private readonly options: Options,
    private readonly fanOut: FanOut,
  ) {
    const tickMs = Math.max(10, Math.min(1000, options.pongTimeoutMs / 2, (options.activityTimeout * 1000) / 4, options.userAuthenticationTimeoutMs / 2));
    this.timer = setInterval(() => this.sweep(Date.now()), tickMs);
    this.timer.unref();
  }

  private sweep(now: number): void {
    const silentSince = now - this.options.activityTimeout * 1000;
    const pongDeadline = now - this.options.pongTimeoutMs;
    const signinDeadline = now - this.options.userAuthenticationTimeoutMs;
    for (const app of this.apps.all()) {
      const requireSignin = app.config.userAuthentication;
      for (const ws of app.sockets.values()) {
        const socket = ws.getUserData();
        if (socket.pingedAt !== 0) {
          if (socket.pingedAt < pongDeadline) {
            this.fanOut.send(ws, errorFrame(ErrorCode.pongTimeout, 'Pong reply not received in time'));
            ws.end(ErrorCode.pongTimeout, 'Pong reply not received in time');
          }
        } else if (socket.lastActivity < silentSince) {
          socket.pingedAt = now;
          this.fanOut.send(ws, PING_FRAME);
        }
        if (requireSignin && socket.userId === null && !socket.closed && socket.openedAt < signinDeadline) {
          this.fanOut.send(ws, errorFrame(ErrorCode.unauthorized, 'Connection not signed in within the user authentication timeout'));
          ws.end(ErrorCode.unauthorized, 'Connection not signed in in time');
        }
      }
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
