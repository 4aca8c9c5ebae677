import { OptionsError } from '../protocol/errors';

/**
 * The webhook events this server sends. `subscription_count` (issue #12) and `cache_miss` join
 * the list when those features exist; until then a config asking for them is refused, so nobody
 * waits for events that never come.
 */
export const WEBHOOK_EVENT_TYPES = ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event', 'subscription_count', 'cache_miss'] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** One `webhooks[]` entry of an app: where to POST, which events, with which extra headers. */
export interface WebhookConfig {
  /** The URL as given, normalized by the URL parser (one stream per app and normalized URL). */
  url: string;
  eventTypes: WebhookEventType[];
  /** Extra request headers, e.g. a token the receiver checks. */
  headers: Record<string, string>;
  /** Only channels whose names start and end with these ('' matches every name). */
  channelNameStartsWith: string;
  channelNameEndsWith: string;
}

const ENTRY_FIELDS = ['url', 'event_types', 'headers', 'filter'];
const FILTER_FIELDS = ['channel_name_starts_with', 'channel_name_ends_with'];

// What the server itself sets: an entry overriding them would break the signature or the framing.
const RESERVED_HEADERS = ['content-type', 'content-length', 'transfer-encoding', 'connection', 'host', 'x-pusher-key', 'x-pusher-signature', 'x-pusher-webhook-id'];
// RFC 9110 token characters, and the field-value characters node:http accepts.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Parses an app's webhooks: a JSON array (or its text, from DEFAULT_APP_WEBHOOKS) of
 * `{url, event_types, headers?, filter?}`. Throws an OptionsError of one line naming `origin`
 * and the entry.
 */
export function parseWebhooks(raw: unknown, origin: string): WebhookConfig[] {
  let value = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw);
    } catch (err) {
      throw new OptionsError(`${origin}: not valid JSON (${(err as Error).message})`);
    }
  }
  if (!Array.isArray(value)) throw new OptionsError(`${origin}: expected a JSON array of webhooks, got ${JSON.stringify(value)}`);
  const byUrl = new Map<string, { index: number; headers: Record<string, string> }>();
  return value.map((entry, i) => {
    const where = `${origin}: entry ${i}`;
    const webhook = parseEntry(entry, where);
    const same = byUrl.get(webhook.url);
    if (same === undefined) byUrl.set(webhook.url, { index: i, headers: webhook.headers });
    else if (!sameHeaders(same.headers, webhook.headers)) {
      // Both entries feed one stream (one request at a time, in order), sent with one set of headers.
      throw new OptionsError(`${where}: same url as entry ${same.index} but other headers; give entries of one url the same headers`);
    }
    return webhook;
  });
}

function parseEntry(entry: unknown, where: string): WebhookConfig {
  if (!isObject(entry)) throw new OptionsError(`${where}: must be an object with "url" and "event_types"`);
  for (const name of Object.keys(entry)) {
    if (!ENTRY_FIELDS.includes(name)) throw new OptionsError(`${where}: unknown field "${name}" (valid: ${ENTRY_FIELDS.join(', ')})`);
  }
  return {
    url: parseUrl(entry.url, where),
    eventTypes: parseEventTypes(entry.event_types, where),
    headers: parseHeaders(entry.headers, where),
    ...parseFilter(entry.filter, where),
  };
}

function parseUrl(raw: unknown, where: string): string {
  if (typeof raw !== 'string') throw new OptionsError(`${where}: "url" must be an http:// or https:// URL, got ${JSON.stringify(raw)}`);
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new OptionsError(`${where}: "url" is not a valid URL: ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OptionsError(`${where}: "url" must be an http:// or https:// URL, got ${JSON.stringify(raw)}`);
  return url.href;
}

function parseEventTypes(raw: unknown, where: string): WebhookEventType[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new OptionsError(`${where}: "event_types" must be a non-empty array of ${WEBHOOK_EVENT_TYPES.join(', ')}`);
  }
  for (const type of raw) {
    if (!(WEBHOOK_EVENT_TYPES as readonly unknown[]).includes(type)) {
      throw new OptionsError(`${where}: unknown event type ${JSON.stringify(type)} (valid: ${WEBHOOK_EVENT_TYPES.join(', ')})`);
    }
  }
  return [...new Set(raw as WebhookEventType[])];
}

function parseHeaders(raw: unknown, where: string): Record<string, string> {
  if (raw === undefined) return {};
  if (!isObject(raw)) throw new OptionsError(`${where}: "headers" must be an object of header names to string values`);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (!HEADER_NAME.test(name)) throw new OptionsError(`${where}: invalid header name ${JSON.stringify(name)}`);
    if (RESERVED_HEADERS.includes(name.toLowerCase())) throw new OptionsError(`${where}: header "${name}" is set by the server and cannot be configured`);
    if (typeof value !== 'string' || !HEADER_VALUE.test(value)) throw new OptionsError(`${where}: header "${name}" must be a string of one line, got ${JSON.stringify(value)}`);
    headers[name] = value;
  }
  return headers;
}

function parseFilter(raw: unknown, where: string): Pick<WebhookConfig, 'channelNameStartsWith' | 'channelNameEndsWith'> {
  if (raw === undefined) return { channelNameStartsWith: '', channelNameEndsWith: '' };
  if (!isObject(raw)) throw new OptionsError(`${where}: "filter" must be an object with channel_name_starts_with and/or channel_name_ends_with`);
  for (const name of Object.keys(raw)) {
    if (!FILTER_FIELDS.includes(name)) throw new OptionsError(`${where}: unknown filter "${name}" (valid: ${FILTER_FIELDS.join(', ')})`);
  }
  const text = (name: string): string => {
    const value = raw[name] ?? '';
    if (typeof value !== 'string') throw new OptionsError(`${where}: filter "${name}" must be a string, got ${JSON.stringify(value)}`);
    return value;
  };
  return { channelNameStartsWith: text('channel_name_starts_with'), channelNameEndsWith: text('channel_name_ends_with') };
}

/** Whether an entry wants an event of this type on this channel. */
export function wants(webhook: WebhookConfig, type: WebhookEventType, channel: string): boolean {
  return webhook.eventTypes.includes(type) && channel.startsWith(webhook.channelNameStartsWith) && channel.endsWith(webhook.channelNameEndsWith);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function sameHeaders(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => b[k] === a[k]);
}
