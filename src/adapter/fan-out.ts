import type { AppState } from '../apps/app-state';
import type { PwsMetrics } from '../metrics/pws-metrics';
import { ErrorCode } from '../protocol/errors';
import { errorFrame } from '../protocol/frames';
import type { Socket } from '../ws/socket';
import type { TemplatedApp } from '../uws';
import type { Broadcaster } from './adapter';

// uWS send() result meaning the frame was dropped for backpressure, not written.
const DROPPED = 2;

/**
 * Delivery to this node's sockets, and the single-node Broadcaster. Every frame written to an
 * accepted socket goes through here, so each is counted exactly once per recipient (refused
 * sockets are never counted). Channel frames use uWS's native topic publish: one serialized
 * string, no per-recipient work in JS. The only module that knows uWS topics exist.
 */
export class FanOut implements Broadcaster {
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

  /** The socket starts receiving the app channel's frames. */
  join(ws: Socket, app: AppState, channel: string): void {
    ws.subscribe(app.topicPrefix + channel);
  }

  /** The socket stops receiving them (a closed socket's topics are dropped by uWS itself). */
  leave(ws: Socket, app: AppState, channel: string): void {
    ws.unsubscribe(app.topicPrefix + channel);
  }

  /** Delivers a frame to every subscriber of an app's channel on this node, except the socket `exceptSocketId`. */
  publish(app: AppState, channel: string, frame: string, exceptSocketId?: string): void {
    const topic = app.topicPrefix + channel;
    const except = exceptSocketId === undefined ? undefined : app.sockets.get(exceptSocketId);
    const excluding = except !== undefined && except.getUserData().ended === null;
    if (this.metrics !== null) {
      this.metrics.channelMessages.add(app.metricsSlot, 1);
      const recipients = this.uws.numSubscribers(topic) - (excluding && except.isSubscribed(topic) ? 1 : 0);
      if (recipients === 0) return;
      this.metrics.channelDeliveries.add(app.metricsSlot, recipients);
      this.metrics.socketTransmittedBytes.add(app.metricsSlot, Buffer.byteLength(frame) * recipients);
      this.metrics.wsMessagesSent.add(app.metricsSlot, recipients);
    }
    if (excluding) except.publish(topic, frame);
    else this.uws.publish(topic, frame);
  }

  /** One node delivers edges as it decides them, in order: nothing to check or keep. */
  publishEdge(app: AppState, channel: string, _key: string, _version: number, frame: string, exceptSocketId?: string): void {
    this.publish(app, channel, frame, exceptSocketId);
  }

  holdEdges(): null {
    return null;
  }

  releaseEdges(): void {}

  /** This node's subscribers of an app's channel. */
  subscribers(app: AppState, channel: string): number {
    return this.uws.numSubscribers(app.topicPrefix + channel);
  }

  /** Closes every connection of a signed-in user on this node with 4009, as `terminate_connections` asks. */
  terminateUser(app: AppState, userId: string): void {
    const sockets = app.users.get(userId);
    if (sockets === undefined) return;
    // Copied: each close removes the socket from this set.
    for (const ws of [...sockets]) this.close(ws, ErrorCode.unauthorized, 'You got disconnected by the app.');
  }

  // One node: every subscriber already receives through uWS topics, there is nothing to listen to.
  listen(): void {}

  unlisten(): void {}

  /** Tells one socket why with a `pusher:error`, then closes it with the same code. */
  close(ws: Socket, code: number, message: string, closeReason = message): void {
    this.send(ws, errorFrame(code, message));
    if (ws.getUserData().ended === null) ws.end(code, closeReason);
  }
}
