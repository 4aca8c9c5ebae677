import type { Apps } from '../apps/apps';
import { clock, clockUnits } from '../clock';
import { ErrorCode } from '../protocol/errors';
import type { FanOut } from '../adapter/fan-out';
import type { Options } from '../options';
import { PING_FRAME } from '../protocol/frames';

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
    this.timer = setInterval(() => this.sweep(clock()), tickMs);
    this.timer.unref();
  }

  private sweep(now: number): void {
    const silentSince = now - clockUnits(this.options.activityTimeout * 1000);
    const pongDeadline = now - clockUnits(this.options.pongTimeoutMs);
    const signinDeadline = now - clockUnits(this.options.userAuthenticationTimeoutMs);
    for (const app of this.apps.all()) {
      app.sockets.forEach((ws) => {
        const socket = ws.getUserData();
        if (socket.activity < 0) {
          if (-socket.activity < pongDeadline) {
            this.fanOut.close(ws, ErrorCode.pongTimeout, 'Pong reply not received in time');
          }
        } else if (socket.activity < silentSince) {
          socket.activity = -now;
          this.fanOut.send(ws, PING_FRAME);
        }
      });
      if (app.awaitingSignin === null) continue;
      for (const [ws, openedAt] of app.awaitingSignin) {
        if (openedAt >= signinDeadline) continue;
        // The close reason is shorter: it must fit a close frame's 123 bytes.
        this.fanOut.close(ws, ErrorCode.unauthorized, 'Connection not signed in within the user authentication timeout', 'Connection not signed in in time');
      }
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
