// The apps table's columns: soketi's, so an existing table works unchanged, plus optional ones of ours.
import { OptionsError } from '../../protocol/errors';
import { minimumOf, type AppConfig } from '../../options';
import { parseWebhooks } from '../../webhooks/webhook-config';

type ColumnKind = 'string' | 'int' | 'bool' | 'webhooks';

export interface Column {
  name: string;
  field: keyof AppConfig;
  kind: ColumnKind;
  /** In soketi's schema (created NOT NULL there for most); the others are ours, added by `apps migrate`. */
  peer: boolean;
}

export const COLUMNS: readonly Column[] = [
  { name: 'id', field: 'id', kind: 'string', peer: true },
  { name: 'key', field: 'key', kind: 'string', peer: true },
  { name: 'secret', field: 'secret', kind: 'string', peer: true },
  { name: 'max_connections', field: 'maxConnections', kind: 'int', peer: true },
  { name: 'enable_client_messages', field: 'enableClientMessages', kind: 'bool', peer: true },
  { name: 'enabled', field: 'enabled', kind: 'bool', peer: true },
  { name: 'max_backend_events_per_sec', field: 'maxBackendEventsPerSecond', kind: 'int', peer: true },
  { name: 'max_client_events_per_sec', field: 'maxClientEventsPerSecond', kind: 'int', peer: true },
  { name: 'max_read_req_per_sec', field: 'maxReadRequestsPerSecond', kind: 'int', peer: true },
  { name: 'webhooks', field: 'webhooks', kind: 'webhooks', peer: true },
  { name: 'max_presence_members_per_channel', field: 'maxPresenceMembersPerChannel', kind: 'int', peer: true },
  { name: 'max_presence_member_size_in_kb', field: 'maxPresenceMemberSizeInKb', kind: 'int', peer: true },
  { name: 'max_channel_name_length', field: 'maxChannelNameLength', kind: 'int', peer: true },
  { name: 'max_event_channels_at_once', field: 'maxEventChannelsAtOnce', kind: 'int', peer: true },
  { name: 'max_event_name_length', field: 'maxEventNameLength', kind: 'int', peer: true },
  { name: 'max_event_payload_in_kb', field: 'maxEventPayloadInKb', kind: 'int', peer: true },
  { name: 'max_event_batch_size', field: 'maxEventBatchSize', kind: 'int', peer: true },
  { name: 'enable_user_authentication', field: 'userAuthentication', kind: 'bool', peer: true },
  { name: 'enable_subscription_count', field: 'enableSubscriptionCount', kind: 'bool', peer: false },
  { name: 'enable_watchlist_events', field: 'enableWatchlistEvents', kind: 'bool', peer: false },
];

const BY_NAME = new Map(COLUMNS.map((c) => [c.name, c]));

/** The column of that name, or undefined. */
export function columnNamed(name: string): Column | undefined {
  return BY_NAME.get(name);
}

/**
 * An app from a row read with `SELECT *`: a column the table lacks, or NULL, takes the server's
 * default (`defaults`: DEFAULT_APP_* and the server-wide limits), as do the peer's 0-sized
 * limits. Throws OptionsError naming the row and column when a value is unusable.
 */
export function rowToApp(row: Record<string, unknown>, defaults: AppConfig): AppConfig {
  const app: Record<string, unknown> = { ...defaults };
  const where = `app ${JSON.stringify(String(row.id ?? '?'))}`;
  for (const column of COLUMNS) {
    const raw = row[column.name];
    if (raw === undefined || raw === null) {
      if (column.field === 'id' || column.field === 'key' || column.field === 'secret') throw new OptionsError(`${where}: column "${column.name}" is empty`);
      continue;
    }
    const value = parseColumn(raw, column, `${where} column "${column.name}"`);
    // soketi's schema types its limits tinyint(1) NULL: 0 there means "not set".
    if (value === 0 && minimumOf(column.field) === 1) continue;
    app[column.field] = value;
  }
  return app as unknown as AppConfig;
}

/** A value as the CLI's `set column=value` gives it, checked as a row's would be. */
export function parseColumn(raw: unknown, column: Column, origin: string): unknown {
  switch (column.kind) {
    case 'string': {
      const text = typeof raw === 'string' ? raw : Buffer.isBuffer(raw) ? raw.toString('utf8') : typeof raw === 'number' ? String(raw) : null;
      if (text === null || text === '') throw new OptionsError(`${origin}: expected a non-empty string, got ${JSON.stringify(raw)}`);
      return text;
    }
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'bigint' ? Number(raw) : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      const min = minimumOf(column.field) ?? -1;
      if (!Number.isSafeInteger(n) || (n < min && !(n === 0 && min === 1))) throw new OptionsError(`${origin}: expected a whole number of at least ${min}, got ${JSON.stringify(raw)}`);
      return n;
    }
    case 'bool':
      // MySQL's tinyint(1), PostgreSQL's smallint or boolean, or what a person types.
      if (raw === true || raw === 1 || raw === '1' || raw === 't' || raw === 'true') return true;
      if (raw === false || raw === 0 || raw === '0' || raw === 'f' || raw === 'false') return false;
      throw new OptionsError(`${origin}: expected true, false, 1 or 0, got ${JSON.stringify(raw)}`);
    case 'webhooks':
      return parseWebhooks(Buffer.isBuffer(raw) ? raw.toString('utf8') : raw, origin);
  }
}

/** What the CLI writes into a column for `value`: JSON for webhooks, 1/0 for booleans (both databases' peer schema uses integers). */
export function columnValue(column: Column, value: unknown): string | number {
  if (column.kind === 'webhooks') return JSON.stringify(value);
  if (column.kind === 'bool') return value ? 1 : 0;
  return value as string | number;
}
