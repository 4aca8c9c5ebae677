import type { AppState } from '../apps';
import type { PwsMetrics } from '../metrics/pws-metrics';
import { errorFrame } from '../protocol/frames';
import type { Socket } from '../ws/socket';
import type { TemplatedApp } from '../uws';

// uWS send() result meaning the frame was dropped for backpressure, not written.
const DROPPED = 2;

/**
 * Every frame written to an accepted socket goes through here, so each is counted exactly once per
 * recipient (refused sockets are never counted). Channel frames use uWS's native topic publish:
 * one serialized string, no per-recipient work in JS.
 */
export class FanOut {
  constructor(
    private readonly uws: TemplatedApp,
    private readonly metrics: PwsMetrics | null,
  ) {}

  /** Writes one frame to one socket. */
  send(ws: Socket, frame: string): void {
    const data = ws.getUserData();
    if (data.ended !== null) return;
    if (ws.send(frame) !== DROPPED && this.metrics !== null) {
      this.metrics.socketTransmittedBytes.add(data.app.metricsSlot, Buffer.byteLength(frame));
      this.metrics.wsMessagesSent.add(data.app.metricsSlot, 1);
    }
  }

  /**
   * Delivers a frame to every subscriber of an app's channel on this node, except `except`
   * (the sender of a client event, or the socket_id an API call excluded).
   */
  publish(app: AppState, channel: string, frame: string, except?: Socket): void {
    const topic = app.topic(channel);
    const excluding = except !== undefined && except.getUserData().ended === null;
    if (this.metrics !== null) {
      const recipients = this.uws.numSubscribers(topic) - (excluding && except.isSubscribed(topic) ? 1 : 0);
      if (recipients === 0) return;
      this.metrics.socketTransmittedBytes.add(app.metricsSlot, Buffer.byteLength(frame) * recipients);
      this.metrics.wsMessagesSent.add(app.metricsSlot, recipients);
    }
    if (excluding) except.publish(topic, frame);
    else this.uws.publish(topic, frame);
  }

  /** Tells one socket why with a `pusher:error`, then closes it with the same code. */
  close(ws: Socket, code: number, message: string, closeReason = message): void {
    this.send(ws, errorFrame(code, message));
    if (ws.getUserData().ended === null) ws.end(code, closeReason);
  }
}
