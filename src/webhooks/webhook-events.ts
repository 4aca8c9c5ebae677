import type { WebhookEventType } from './webhook-config';

/**
 * One event of a webhook body, in Pusher's shape and key order. It is serialized once, when it
 * is queued, and each POST joins the serialized events: `json` is what the receiver gets.
 */
export interface WebhookEvent {
  type: WebhookEventType;
  channel: string;
  json: string;
}

function event(type: WebhookEventType, channel: string, fields: object): WebhookEvent {
  return { type, channel, json: JSON.stringify({ name: type, channel, ...fields }) };
}

export function channelOccupied(channel: string): WebhookEvent {
  return event('channel_occupied', channel, {});
}

export function channelVacated(channel: string): WebhookEvent {
  return event('channel_vacated', channel, {});
}

export function memberAdded(channel: string, userId: string): WebhookEvent {
  return event('member_added', channel, { user_id: userId });
}

export function memberRemoved(channel: string, userId: string): WebhookEvent {
  return event('member_removed', channel, { user_id: userId });
}

/** The count announced to the channel's subscribers (apps with enableSubscriptionCount). */
export function subscriptionCount(channel: string, count: number): WebhookEvent {
  return event('subscription_count', channel, { subscription_count: count });
}

/** A cache channel found empty by a new subscriber (once per burst). */
export function cacheMiss(channel: string): WebhookEvent {
  return event('cache_miss', channel, {});
}

/**
 * `data` is a string, as Pusher sends it: pusher-js may send an object, which goes out as its
 * JSON text. `user_id` only on presence channels.
 */
export function clientEvent(channel: string, name: string, data: unknown, socketId: string, userId: string | undefined): WebhookEvent {
  const text = typeof data === 'string' ? data : JSON.stringify(data ?? null);
  return event('client_event', channel, userId === undefined ? { event: name, data: text, socket_id: socketId } : { event: name, data: text, socket_id: socketId, user_id: userId });
}

/** A webhook body: `{"time_ms":…,"events":[…]}`, the exact bytes that are signed and sent. */
export function webhookBody(timeMs: number, events: readonly WebhookEvent[]): Buffer {
  let json = `{"time_ms":${timeMs},"events":[`;
  for (let i = 0; i < events.length; i++) json += (i === 0 ? '' : ',') + events[i].json;
  return Buffer.from(json + ']}');
}
