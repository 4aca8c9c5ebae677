import type { AppState } from '../apps/app-state';
import type { Log } from '../log';
import type { ChannelEvents } from './events';

/** With DEBUG on, one log line per channel event, so an operator can follow occupancy and presence. */
export class ChannelEventLog implements ChannelEvents {
  constructor(private readonly log: Log) {}

  occupied(app: AppState, channel: string): void {
    this.log.debug(`channel_occupied app=${app.config.id} channel=${channel}`);
  }

  vacated(app: AppState, channel: string): void {
    this.log.debug(`channel_vacated app=${app.config.id} channel=${channel}`);
  }

  memberAdded(app: AppState, channel: string, userId: string): void {
    this.log.debug(`member_added app=${app.config.id} channel=${channel} user=${userId}`);
  }

  memberRemoved(app: AppState, channel: string, userId: string): void {
    this.log.debug(`member_removed app=${app.config.id} channel=${channel} user=${userId}`);
  }

  subscriptionCount(app: AppState, channel: string, count: number): void {
    this.log.debug(`subscription_count app=${app.config.id} channel=${channel} count=${count}`);
  }

  cacheMiss(app: AppState, channel: string): void {
    this.log.debug(`cache_miss app=${app.config.id} channel=${channel}`);
  }

  clientEvent(app: AppState, channel: string, event: string, data: unknown, socketId: string): void {
    this.log.debug(`client_event app=${app.config.id} channel=${channel} event=${event} socket=${socketId}`);
  }
}
