import { type KeyObject, X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { OptionsError } from './protocol/errors';
import { parseWebhooks, type WebhookConfig } from './webhooks/webhook-config';

/** One app's credentials and limits. */
export interface AppConfig {
  id: string;
  key: string;
  secret: string;
  /** Concurrent connections allowed (cluster-wide with the Redis adapter); -1 for no limit. */
  maxConnections: number;
  /** Events × channels the REST API may trigger per second; -1 for no limit. */
  maxBackendEventsPerSecond: number;
  /** Client events one socket may send per second; -1 for no limit. */
  maxClientEventsPerSecond: number;
  /** REST reads (channels, users) per second; -1 for no limit. */
  maxReadRequestsPerSecond: number;
  enableClientMessages: boolean;
  enabled: boolean;
  /** Connections must `pusher:signin` within `userAuthenticationTimeoutMs` or are closed with 4009. */
  userAuthentication: boolean;
  /** Send live `pusher_internal:subscription_count` frames and subscription_count webhooks. */
  enableSubscriptionCount: boolean;
  /** Where to POST this app's webhooks (docs/webhooks.md); empty for none. */
  webhooks: WebhookConfig[];
  /** Signed-in users get the online status of their `user_data.watchlist` (docs/pusher-features.md). */
  enableWatchlistEvents: boolean;
  /** The limits below default to the server-wide options of the same meaning (PRESENCE_MAX_MEMBERS…). */
  maxPresenceMembersPerChannel: number;
  maxPresenceMemberSizeInKb: number;
  maxChannelNameLength: number;
  maxEventChannelsAtOnce: number;
  maxEventNameLength: number;
  maxEventPayloadInKb: number;
  maxEventBatchSize: number;
}

/** Everything the server reads from its environment and config file, typed and validated. */
export interface Options {
  port: number;
  host: string;
  debug: boolean;
  apps: AppConfig[];
  /** The app the DEFAULT_APP_* options make: the app store's defaults for its missing columns and NULLs. */
  appDefaults: AppConfig;
  activityTimeout: number;
  pongTimeoutMs: number;
  userAuthenticationTimeoutMs: number;
  eventMaxChannelsAtOnce: number;
  eventMaxNameLength: number;
  eventMaxSizeInKb: number;
  eventMaxBatchSize: number;
  presenceMaxMembers: number;
  presenceMaxMemberSizeInKb: number;
  channelMaxNameLength: number;
  httpMaxRequestSizeInKb: number;
  wsMaxMessageSizeInKb: number;
  acceptTrafficMemoryThreshold: number;
  shutdownGracePeriodMs: number;
  sslCert: string;
  sslKey: string;
  sslPass: string;
  metricsEnabled: boolean;
  metricsDriver: MetricsDriver;
  metricsPrefix: string;
  metricsServerPort: number;
  pushgatewayUrl: string;
  pushgatewayIntervalMs: number;
  pushgatewayJob: string;
  pushgatewayInstance: string;
  pushgatewayDeleteOnShutdown: boolean;
  adapterDriver: AdapterDriver;
  rateLimiterDriver: AdapterDriver;
  adapterNodeTimeoutMs: number;
  adapterOutboxMaxAgeMs: number;
  adapterOutboxMaxFrames: number;
  adapterOutboxMaxSizeInKb: number;
  redisUrl: string;
  redisHost: string;
  redisPort: number;
  redisUsername: string;
  redisPassword: string;
  redisDb: number;
  redisTls: boolean;
  redisKeyPrefix: string;
  redisClusterNodes: string;
  redisSentinels: string;
  redisSentinelName: string;
  redisSentinelPassword: string;
  webhooksBatching: boolean;
  webhooksBatchingDurationMs: number;
  appManagerDriver: AppManagerDriver;
  appManagerCacheTtlSeconds: number;
  postgresHost: string;
  postgresPort: number;
  postgresUsername: string;
  postgresPassword: string;
  postgresDatabase: string;
  postgresSsl: SqlSsl;
  postgresTable: string;
  mysqlHost: string;
  mysqlPort: number;
  mysqlUsername: string;
  mysqlPassword: string;
  mysqlDatabase: string;
  mysqlSsl: SqlSsl;
  mysqlTable: string;
  consoleEnabled: boolean;
  consolePassword: string;
}

/** Valid values of APP_MANAGER_DRIVER. */
export const APP_MANAGER_DRIVERS = ['config', 'postgres', 'mysql'] as const;
export type AppManagerDriver = (typeof APP_MANAGER_DRIVERS)[number];

/** Valid values of DB_POSTGRES_SSL and DB_MYSQL_SSL: off, TLS without checking the certificate, TLS checked against the system's CAs. */
export const SQL_SSL_MODES = ['off', 'on', 'verify'] as const;
export type SqlSsl = (typeof SQL_SSL_MODES)[number];

/** Valid values of ADAPTER_DRIVER. */
export const ADAPTER_DRIVERS = ['local', 'redis'] as const;
export type AdapterDriver = (typeof ADAPTER_DRIVERS)[number];

/** Valid values of METRICS_DRIVER. */
export const METRICS_DRIVERS = ['prometheus', 'pushgateway'] as const;
export type MetricsDriver = (typeof METRICS_DRIVERS)[number];

type Kind = 'int' | 'percent' | 'bool' | 'string' | 'url' | 'driver' | 'adapter' | 'metricPrefix' | 'webhooks' | 'appManager' | 'sqlSsl' | 'table';

interface Spec {
  env: string;
  key: Exclude<keyof Options, 'apps'> | `app.${keyof AppConfig}`;
  kind: Kind;
  default: string;
  min?: number;
  max?: number;
  help: string;
}

// Maxima: each integer ends where what consumes it would wrap or fail. Ports: uWS takes them modulo
// 65536. Message and request sizes: every accepted message or body is decoded into one JS string,
// which V8 caps at 2^29 - 24 characters on 64-bit; this also keeps twice the WebSocket limit, uWS's
// 32-bit payload ceiling, from wrapping (at 2097152 KB it wrapped to 0 and every message was dropped).
// Delays: setTimeout fires at once for anything above 2^31 - 1 ms.
const MAX_DECODED_KB = 524287;
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The single table of options: parsing, `--help` and docs/configuration.md all come from it.
 * Option names are the unprefixed ones pWS users already have in their environments.
 */
export const OPTION_SPECS: readonly Spec[] = [
  { env: 'PORT', key: 'port', kind: 'int', default: '6001', min: 0, max: 65535, help: 'Port for WebSocket connections and the HTTP API.' },
  { env: 'HOST', key: 'host', kind: 'string', default: '0.0.0.0', help: 'Address to listen on.' },
  { env: 'DEBUG', key: 'debug', kind: 'bool', default: 'false', help: 'Log connections, subscriptions and API calls.' },
  { env: 'DEFAULT_APP_ID', key: 'app.id', kind: 'string', default: 'app-id', help: 'ID of the default app (used when the config file has no apps).' },
  { env: 'DEFAULT_APP_KEY', key: 'app.key', kind: 'string', default: 'app-key', help: 'Key of the default app.' },
  { env: 'DEFAULT_APP_SECRET', key: 'app.secret', kind: 'string', default: 'app-secret', help: 'Secret of the default app.' },
  { env: 'DEFAULT_APP_MAX_CONNS', key: 'app.maxConnections', kind: 'int', default: '-1', min: -1, help: 'Connections the default app may hold (on every node together with ADAPTER_DRIVER=redis); -1 for no limit.' },
  { env: 'DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC', key: 'app.maxBackendEventsPerSecond', kind: 'int', default: '-1', min: -1, help: 'Events the REST API may trigger per second for the default app, each counted once per channel; above it the whole request gets 429. 0 refuses every trigger, -1 for no limit.' },
  { env: 'DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SEC', key: 'app.maxClientEventsPerSecond', kind: 'int', default: '-1', min: -1, help: 'Client events one socket may send per second; above it the event is dropped and the socket gets pusher:error 4301. -1 for no limit.' },
  { env: 'DEFAULT_APP_MAX_READ_REQ_PER_SEC', key: 'app.maxReadRequestsPerSecond', kind: 'int', default: '-1', min: -1, help: 'REST reads (GET channels and users) per second for the default app; above it 429. 0 refuses every read, -1 for no limit.' },
  { env: 'DEFAULT_APP_ENABLE_CLIENT_MESSAGES', key: 'app.enableClientMessages', kind: 'bool', default: 'false', help: 'Allow client-* events on private and presence channels.' },
  { env: 'DEFAULT_APP_ENABLED', key: 'app.enabled', kind: 'bool', default: 'true', help: 'Accept connections for the default app.' },
  { env: 'DEFAULT_APP_USER_AUTHENTICATION', key: 'app.userAuthentication', kind: 'bool', default: 'false', help: 'Require pusher:signin within USER_AUTHENTICATION_TIMEOUT.' },
  { env: 'DEFAULT_APP_WEBHOOKS', key: 'app.webhooks', kind: 'webhooks', default: '[]', help: 'Webhooks of the default app, a JSON array of {"url", "event_types", "headers", "filter"} (docs/webhooks.md).' },
  { env: 'DEFAULT_APP_ENABLE_SUBSCRIPTION_COUNT', key: 'app.enableSubscriptionCount', kind: 'bool', default: 'false', help: 'Send subscribers of non-presence channels the live subscription count (pusher:subscription_count in pusher-js) and the subscription_count webhook.' },
  { env: 'DEFAULT_APP_ENABLE_WATCHLIST_EVENTS', key: 'app.enableWatchlistEvents', kind: 'bool', default: 'false', help: 'Send signed-in users the online status of the users in their user_data.watchlist, and every change of it (docs/pusher-features.md).' },
  { env: 'ACTIVITY_TIMEOUT', key: 'activityTimeout', kind: 'int', default: '120', min: 1, help: 'Seconds of silence after which the server pings a socket (sent to clients as activity_timeout).' },
  { env: 'PONG_TIMEOUT', key: 'pongTimeoutMs', kind: 'int', default: '30000', min: 1, help: 'Milliseconds a pinged socket has to answer before it is closed with 4201.' },
  { env: 'USER_AUTHENTICATION_TIMEOUT', key: 'userAuthenticationTimeoutMs', kind: 'int', default: '30000', min: 1, help: 'Milliseconds a socket of an app with user authentication has to sign in.' },
  { env: 'EVENT_MAX_CHANNELS_AT_ONCE', key: 'eventMaxChannelsAtOnce', kind: 'int', default: '100', min: 1, help: 'Channels one API event may target.' },
  { env: 'EVENT_MAX_NAME_LENGTH', key: 'eventMaxNameLength', kind: 'int', default: '200', min: 1, help: 'Longest event name accepted.' },
  { env: 'EVENT_MAX_SIZE_IN_KB', key: 'eventMaxSizeInKb', kind: 'int', default: '100', min: 1, help: 'Largest event data accepted, in KB.' },
  { env: 'EVENT_MAX_BATCH_SIZE', key: 'eventMaxBatchSize', kind: 'int', default: '10', min: 1, help: 'Events one batch_events call may carry.' },
  { env: 'PRESENCE_MAX_MEMBERS', key: 'presenceMaxMembers', kind: 'int', default: '100', min: 1, help: 'Distinct users one presence channel may hold.' },
  { env: 'PRESENCE_MAX_MEMBER_SIZE', key: 'presenceMaxMemberSizeInKb', kind: 'int', default: '2', min: 1, help: "Largest presence member's user_info, in KB." },
  { env: 'CHANNEL_LIMITS_MAX_NAME_LENGTH', key: 'channelMaxNameLength', kind: 'int', default: '200', min: 1, help: 'Longest channel name accepted.' },
  { env: 'HTTP_MAX_REQUEST_SIZE', key: 'httpMaxRequestSizeInKb', kind: 'int', default: '100', min: 1, max: MAX_DECODED_KB, help: 'Largest REST API request body, in KB (413 above it).' },
  { env: 'WS_MAX_MESSAGE_SIZE', key: 'wsMaxMessageSizeInKb', kind: 'int', default: '100', min: 1, max: MAX_DECODED_KB, help: 'Largest WebSocket message accepted from a client, in KB: the socket is closed with 1009 above it, and dropped unread above twice it.' },
  { env: 'HTTP_ACCEPT_TRAFFIC_MEMORY_THRESHOLD', key: 'acceptTrafficMemoryThreshold', kind: 'percent', default: '85', help: 'Percent of system memory (decimals allowed, e.g. 0.5) used by this process above which /accept-traffic answers 503 and new connections are refused with 4100.' },
  { env: 'SHUTDOWN_GRACE_PERIOD', key: 'shutdownGracePeriodMs', kind: 'int', default: '3000', min: 0, max: MAX_TIMER_MS, help: 'On SIGTERM/SIGINT, milliseconds between closing every socket with 4200 and exiting, while /ready answers 503 and late clients are told to reconnect.' },
  { env: 'SSL_CERT', key: 'sslCert', kind: 'string', default: '', help: 'Path of a PEM certificate: serve wss:// and https://.' },
  { env: 'SSL_KEY', key: 'sslKey', kind: 'string', default: '', help: 'Path of the PEM private key.' },
  { env: 'SSL_PASS', key: 'sslPass', kind: 'string', default: '', help: 'Passphrase of the private key.' },
  { env: 'METRICS_ENABLED', key: 'metricsEnabled', kind: 'bool', default: 'false', help: 'Count traffic and serve GET /metrics.' },
  { env: 'METRICS_DRIVER', key: 'metricsDriver', kind: 'driver', default: 'prometheus', help: `How metrics leave the node: ${METRICS_DRIVERS.join(' or ')}.` },
  { env: 'METRICS_PROMETHEUS_PREFIX', key: 'metricsPrefix', kind: 'metricPrefix', default: 'pws_', help: 'Prefix of every metric name: letters, digits, _ and :, not starting with a digit.' },
  { env: 'METRICS_SERVER_PORT', key: 'metricsServerPort', kind: 'int', default: '0', min: 0, max: 65535, help: 'Serve /metrics on this port instead of PORT (it must differ from PORT); 0 keeps it on PORT.' },
  { env: 'METRICS_PUSHGATEWAY_URL', key: 'pushgatewayUrl', kind: 'url', default: 'http://127.0.0.1:9091', help: 'Pushgateway base URL (driver pushgateway).' },
  { env: 'METRICS_PUSHGATEWAY_INTERVAL', key: 'pushgatewayIntervalMs', kind: 'int', default: '15000', min: 100, max: MAX_TIMER_MS, help: 'Milliseconds between pushes.' },
  { env: 'METRICS_PUSHGATEWAY_JOB', key: 'pushgatewayJob', kind: 'string', default: 'pws', help: 'Pushgateway job label.' },
  { env: 'METRICS_PUSHGATEWAY_INSTANCE', key: 'pushgatewayInstance', kind: 'string', default: '<hostname>:<port>', help: 'Pushgateway instance label.' },
  { env: 'METRICS_PUSHGATEWAY_DELETE_ON_SHUTDOWN', key: 'pushgatewayDeleteOnShutdown', kind: 'bool', default: 'false', help: "Delete the node's group from the Pushgateway on shutdown instead of a last push." },
  { env: 'ADAPTER_DRIVER', key: 'adapterDriver', kind: 'adapter', default: 'local', help: 'local: one node, no external service. redis: many nodes act as one server, sharing channels, presence and connection counts through Redis 7+ (docs/scaling.md).' },
  { env: 'ADAPTER_NODE_TIMEOUT', key: 'adapterNodeTimeoutMs', kind: 'int', default: '10000', min: 1000, help: 'Milliseconds without a heartbeat after which a node counts as dead and another node removes its connections from channels and presence; nodes beat every quarter of it.' },
  { env: 'ADAPTER_OUTBOX_MAX_AGE', key: 'adapterOutboxMaxAgeMs', kind: 'int', default: '10000', min: 0, max: MAX_TIMER_MS, help: 'While Redis is unreachable, frames for other nodes wait in order in an outbox and go out when it is back: milliseconds a frame waits at most before it is dropped (docs/scaling.md).' },
  { env: 'ADAPTER_OUTBOX_MAX_FRAMES', key: 'adapterOutboxMaxFrames', kind: 'int', default: '10000', min: 0, help: 'Frames the outbox holds at most; a REST trigger it cannot take gets 503 and delivers nothing.' },
  { env: 'ADAPTER_OUTBOX_MAX_SIZE', key: 'adapterOutboxMaxSizeInKb', kind: 'int', default: '16384', min: 0, max: 2 ** 31 / 1024 - 1, help: 'KB of frames the outbox holds at most.' },
  { env: 'RATE_LIMITER_DRIVER', key: 'rateLimiterDriver', kind: 'adapter', default: 'local', help: "local: rate limits hold per node. redis: an app's limits hold across every node, on the cluster's Redis (needs ADAPTER_DRIVER=redis); if Redis does not answer, each node counts alone." },
  { env: 'REDIS_URL', key: 'redisUrl', kind: 'string', default: '', help: 'redis[s]://[[user][:password]@]host[:port][/db] of the Redis server, instead of the DB_REDIS_HOST, PORT, USERNAME, PASSWORD, DB and TLS options.' },
  { env: 'DB_REDIS_HOST', key: 'redisHost', kind: 'string', default: '127.0.0.1', help: 'Redis host (ADAPTER_DRIVER=redis).' },
  { env: 'DB_REDIS_PORT', key: 'redisPort', kind: 'int', default: '6379', min: 1, max: 65535, help: 'Redis port.' },
  { env: 'DB_REDIS_USERNAME', key: 'redisUsername', kind: 'string', default: '', help: 'Redis ACL user name.' },
  { env: 'DB_REDIS_PASSWORD', key: 'redisPassword', kind: 'string', default: '', help: 'Redis password.' },
  { env: 'DB_REDIS_DB', key: 'redisDb', kind: 'int', default: '0', min: 0, help: 'Redis database number (a Redis Cluster has only 0). Deployments on different databases of one Redis never see each other\'s events.' },
  { env: 'DB_REDIS_TLS', key: 'redisTls', kind: 'bool', default: 'false', help: 'Connect to Redis over TLS.' },
  { env: 'DB_REDIS_KEY_PREFIX', key: 'redisKeyPrefix', kind: 'string', default: 'pws', help: 'Prefix of every Redis key and pub/sub channel, so several clusters can share one Redis.' },
  { env: 'DB_REDIS_CLUSTER_NODES', key: 'redisClusterNodes', kind: 'string', default: '', help: 'Comma-separated host:port of some Redis Cluster nodes: connect to that Redis Cluster (routing uses sharded pub/sub).' },
  { env: 'DB_REDIS_SENTINELS', key: 'redisSentinels', kind: 'string', default: '', help: 'Comma-separated host:port of Redis Sentinels: connect to the master they name DB_REDIS_SENTINEL_NAME, and follow failovers.' },
  { env: 'DB_REDIS_SENTINEL_NAME', key: 'redisSentinelName', kind: 'string', default: 'mymaster', help: 'Name of the master the Sentinels watch.' },
  { env: 'DB_REDIS_SENTINEL_PASSWORD', key: 'redisSentinelPassword', kind: 'string', default: '', help: 'Password of the Sentinels themselves.' },
  { env: 'WEBHOOKS_BATCHING', key: 'webhooksBatching', kind: 'bool', default: 'true', help: 'Send up to 20 webhook events per POST (per app and URL); false sends one event per POST.' },
  { env: 'WEBHOOKS_BATCHING_DURATION', key: 'webhooksBatchingDurationMs', kind: 'int', default: '250', min: 0, help: 'Milliseconds a webhook event waits for others to share its POST (with WEBHOOKS_BATCHING).' },
  { env: 'APP_MANAGER_DRIVER', key: 'appManagerDriver', kind: 'appManager', default: 'config', help: `Where apps come from: ${APP_MANAGER_DRIVERS.join(', ')}. config: the config file's apps, or the DEFAULT_APP_* one. postgres, mysql: a table of apps, changed while running with "pws-server apps" (docs/apps.md).` },
  { env: 'APP_MANAGER_CACHE_TTL', key: 'appManagerCacheTtlSeconds', kind: 'int', default: '10', min: 1, max: Math.floor(MAX_TIMER_MS / 1000), help: 'Seconds between reloads of the apps table: a row changed by plain SQL is seen within this time (changes made with "pws-server apps" within a second). Unknown keys are remembered as unknown for as long.' },
  { env: 'DB_POSTGRES_HOST', key: 'postgresHost', kind: 'string', default: '127.0.0.1', help: 'PostgreSQL host (APP_MANAGER_DRIVER=postgres).' },
  { env: 'DB_POSTGRES_PORT', key: 'postgresPort', kind: 'int', default: '5432', min: 1, max: 65535, help: 'PostgreSQL port.' },
  { env: 'DB_POSTGRES_USERNAME', key: 'postgresUsername', kind: 'string', default: 'postgres', help: 'PostgreSQL user.' },
  { env: 'DB_POSTGRES_PASSWORD', key: 'postgresPassword', kind: 'string', default: '', help: 'PostgreSQL password.' },
  { env: 'DB_POSTGRES_DATABASE', key: 'postgresDatabase', kind: 'string', default: 'pws', help: 'PostgreSQL database holding the apps table.' },
  { env: 'DB_POSTGRES_SSL', key: 'postgresSsl', kind: 'sqlSsl', default: 'off', help: 'TLS to PostgreSQL: off, on (encrypted, certificate not checked) or verify (checked against the system CAs and NODE_EXTRA_CA_CERTS).' },
  { env: 'APP_MANAGER_POSTGRES_TABLE', key: 'postgresTable', kind: 'table', default: 'apps', help: 'Table of apps in PostgreSQL (schema.table allowed).' },
  { env: 'DB_MYSQL_HOST', key: 'mysqlHost', kind: 'string', default: '127.0.0.1', help: 'MySQL or MariaDB host (APP_MANAGER_DRIVER=mysql).' },
  { env: 'DB_MYSQL_PORT', key: 'mysqlPort', kind: 'int', default: '3306', min: 1, max: 65535, help: 'MySQL or MariaDB port.' },
  { env: 'DB_MYSQL_USERNAME', key: 'mysqlUsername', kind: 'string', default: 'root', help: 'MySQL or MariaDB user.' },
  { env: 'DB_MYSQL_PASSWORD', key: 'mysqlPassword', kind: 'string', default: '', help: 'MySQL or MariaDB password.' },
  { env: 'DB_MYSQL_DATABASE', key: 'mysqlDatabase', kind: 'string', default: 'pws', help: 'MySQL or MariaDB database holding the apps table.' },
  { env: 'DB_MYSQL_SSL', key: 'mysqlSsl', kind: 'sqlSsl', default: 'off', help: 'TLS to MySQL or MariaDB: off, on (encrypted, certificate not checked) or verify.' },
  { env: 'APP_MANAGER_MYSQL_TABLE', key: 'mysqlTable', kind: 'table', default: 'apps', help: 'Table of apps in MySQL or MariaDB (database.table allowed).' },
  { env: 'CONSOLE_ENABLED', key: 'consoleEnabled', kind: 'bool', default: 'false', help: 'Serve the live console at /console, on METRICS_SERVER_PORT when it is set, else on PORT (docs/console.md).' },
  { env: 'CONSOLE_PASSWORD', key: 'consolePassword', kind: 'string', default: '', help: 'Password of the console; required with CONSOLE_ENABLED.' },
];

const APP_FIELDS: Record<keyof AppConfig, Kind> = {
  id: 'string',
  key: 'string',
  secret: 'string',
  maxConnections: 'int',
  maxBackendEventsPerSecond: 'int',
  maxClientEventsPerSecond: 'int',
  maxReadRequestsPerSecond: 'int',
  enableClientMessages: 'bool',
  enabled: 'bool',
  userAuthentication: 'bool',
  enableSubscriptionCount: 'bool',
  webhooks: 'webhooks',
  enableWatchlistEvents: 'bool',
  maxPresenceMembersPerChannel: 'int',
  maxPresenceMemberSizeInKb: 'int',
  maxChannelNameLength: 'int',
  maxEventChannelsAtOnce: 'int',
  maxEventNameLength: 'int',
  maxEventPayloadInKb: 'int',
  maxEventBatchSize: 'int',
};

/** Each app's limits that default to a server-wide option, and that option. */
export const APP_LIMIT_DEFAULTS = {
  maxPresenceMembersPerChannel: 'presenceMaxMembers',
  maxPresenceMemberSizeInKb: 'presenceMaxMemberSizeInKb',
  maxChannelNameLength: 'channelMaxNameLength',
  maxEventChannelsAtOnce: 'eventMaxChannelsAtOnce',
  maxEventNameLength: 'eventMaxNameLength',
  maxEventPayloadInKb: 'eventMaxSizeInKb',
  maxEventBatchSize: 'eventMaxBatchSize',
} as const satisfies Partial<Record<keyof AppConfig, keyof Options>>;

// An empty secret lets anyone sign requests; an empty id or key can never be addressed.
const CREDENTIALS = ['id', 'key', 'secret'];

/** Where a value came from, for error messages that name the option. */
type Source = Record<string, unknown>;

/**
 * Builds the options from defaults, then the JSON config file (if any), then environment variables.
 * Throws OptionsError naming the first bad option.
 */
export function loadOptions(env: NodeJS.ProcessEnv = process.env, configPath?: string): Options {
  const file = configPath ? readConfigFile(configPath) : {};
  const out: Record<string, unknown> = {};
  const defaultApp: Record<string, unknown> = {};
  for (const spec of OPTION_SPECS) {
    let raw: unknown = spec.default;
    let origin = 'default';
    if (Object.hasOwn(file, spec.env)) {
      raw = file[spec.env];
      origin = `${spec.env} in ${configPath}`;
    }
    if (env[spec.env] !== undefined && env[spec.env] !== '') {
      raw = env[spec.env];
      origin = spec.env;
    }
    if (spec.key === 'pushgatewayInstance' && raw === spec.default) continue;
    const value = parseValue(raw, spec.kind, origin, spec.min, spec.max);
    if (spec.key.startsWith('app.')) {
      const field = spec.key.slice(4);
      if (value === '' && CREDENTIALS.includes(field)) throw new OptionsError(`${origin}: must not be empty`);
      defaultApp[field] = value;
    } else {
      out[spec.key] = value;
    }
  }
  for (const [field, option] of Object.entries(APP_LIMIT_DEFAULTS)) defaultApp[field] = out[option];
  if (out.pushgatewayInstance === undefined) out.pushgatewayInstance = `${hostname()}:${out.port}`;
  // One port cannot carry both listeners: say so, rather than fail to bind it as if another process held it.
  if (out.metricsServerPort !== 0 && out.metricsServerPort === out.port) {
    throw new OptionsError(`METRICS_SERVER_PORT: must differ from PORT (${out.port}); 0 serves /metrics on PORT`);
  }
  if (out.consoleEnabled === true && out.consolePassword === '') throw new OptionsError('CONSOLE_PASSWORD: must be set when CONSOLE_ENABLED is on');
  checkTlsFiles(out.sslCert as string, out.sslKey as string, out.sslPass as string);
  checkRedis(out);
  if (out.rateLimiterDriver === 'redis' && out.adapterDriver !== 'redis') {
    throw new OptionsError('RATE_LIMITER_DRIVER: redis needs ADAPTER_DRIVER=redis (the limits use the cluster\'s Redis connection)');
  }
  const fileApps = file.apps;
  if (fileApps !== undefined && out.appManagerDriver !== 'config') {
    throw new OptionsError(`apps in ${configPath}: not used with APP_MANAGER_DRIVER=${out.appManagerDriver} (the apps come from the database): remove them, or use APP_MANAGER_DRIVER=config`);
  }
  out.appDefaults = defaultApp;
  out.apps = fileApps === undefined ? [defaultApp as unknown as AppConfig] : parseApps(fileApps, configPath!, defaultApp);
  return out as unknown as Options;
}

// uWS reports every unusable certificate or key only as "App construction failed": name the option and the reason.
function checkTlsFiles(cert: string, key: string, pass: string): void {
  if (cert === '' && key === '') return;
  if (cert === '' || key === '') throw new OptionsError(`${cert === '' ? 'SSL_CERT' : 'SSL_KEY'}: must be set too when ${cert === '' ? 'SSL_KEY' : 'SSL_CERT'} is set`);
  const certPem = readTlsFile('SSL_CERT', cert);
  const keyPem = readTlsFile('SSL_KEY', key);
  let certificate: X509Certificate;
  try {
    // uWS reads PEM only, where X509Certificate would take DER too.
    if (!certPem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no BEGIN CERTIFICATE line');
    certificate = new X509Certificate(certPem);
  } catch (err) {
    throw new OptionsError(`SSL_CERT: ${cert} is not a PEM certificate (${opensslReason(err)})`);
  }
  const keyText = keyPem.toString('latin1');
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyText)) throw new OptionsError(`SSL_KEY: ${key} is not a PEM private key (no BEGIN PRIVATE KEY line)`);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: keyPem, format: 'pem', passphrase: pass === '' ? undefined : pass });
  } catch (err) {
    // Both PKCS#8 ("BEGIN ENCRYPTED PRIVATE KEY") and legacy ("Proc-Type: 4,ENCRYPTED") encrypted keys say so in clear.
    if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(keyText)) {
      throw new OptionsError(pass === '' ? `SSL_PASS: must be set: ${key} is an encrypted key` : `SSL_PASS: does not decrypt ${key}`);
    }
    throw new OptionsError(`SSL_KEY: ${key} is not a PEM private key (${opensslReason(err)})`);
  }
  if (!certificate.checkPrivateKey(privateKey)) throw new OptionsError(`SSL_KEY: ${key} does not match the certificate in ${cert}`);
}

function readTlsFile(option: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new OptionsError(`${option}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
}

// OpenSSL's "error:0480006C:PEM routines::no start line" → "no start line".
function opensslReason(err: unknown): string {
  return String((err as Error)?.message ?? err).split('::').pop()!;
}

// One way to reach Redis, in a form the client takes; checked even with the local adapter, so a
// typo is found before the switch to redis.
function checkRedis(out: Record<string, unknown>): void {
  const url = out.redisUrl as string;
  const ways = [url !== '' && 'REDIS_URL', out.redisClusterNodes !== '' && 'DB_REDIS_CLUSTER_NODES', out.redisSentinels !== '' && 'DB_REDIS_SENTINELS'].filter(Boolean);
  if (ways.length > 1) throw new OptionsError(`${ways[1]}: set only one of REDIS_URL, DB_REDIS_CLUSTER_NODES and DB_REDIS_SENTINELS`);
  if (url !== '' && !/^rediss?:\/\/[^\s]+$/.test(url)) throw new OptionsError(`REDIS_URL: expected redis://… or rediss://…, got ${JSON.stringify(url)}`);
  if (out.redisClusterNodes !== '') parseHostPorts(out.redisClusterNodes as string, 'DB_REDIS_CLUSTER_NODES');
  if (out.redisSentinels !== '') parseHostPorts(out.redisSentinels as string, 'DB_REDIS_SENTINELS');
  if (out.redisKeyPrefix === '') throw new OptionsError('DB_REDIS_KEY_PREFIX: must not be empty');
}

/** Parses `host:port,host:port` (DB_REDIS_CLUSTER_NODES, DB_REDIS_SENTINELS). */
export function parseHostPorts(list: string, option: string): { host: string; port: number }[] {
  return list.split(',').map((entry) => {
    const match = /^\s*\[?([^\]\s]+?)\]?:(\d{1,5})\s*$/.exec(entry);
    const port = match ? Number(match[2]) : 0;
    if (match === null || port < 1 || port > 65535) throw new OptionsError(`${option}: expected host:port[,host:port…], got ${JSON.stringify(entry)}`);
    return { host: match[1], port };
  });
}

function readConfigFile(path: string): Source {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new OptionsError(`--config ${path}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new OptionsError(`--config ${path}: not valid JSON (${(err as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new OptionsError(`--config ${path}: the file must hold a JSON object`);
  }
  const known = new Set(OPTION_SPECS.map((s) => s.env).concat('apps'));
  for (const name of Object.keys(parsed)) {
    if (!known.has(name)) throw new OptionsError(`--config ${path}: unknown option "${name}" (see pws-server start --help)`);
  }
  return parsed as Source;
}

function parseApps(value: unknown, path: string, defaults: Record<string, unknown>): AppConfig[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new OptionsError(`apps in ${path}: must be a non-empty array of apps`);
  }
  const ids = new Set<string>();
  const keys = new Set<string>();
  return value.map((entry, i) => {
    const where = `apps[${i}] in ${path}`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new OptionsError(`${where}: must be an object`);
    const app: Record<string, unknown> = {};
    for (const name of Object.keys(entry)) {
      // Own keys only: `in` would also accept "constructor", "toString" and the rest of Object.prototype.
      if (!Object.hasOwn(APP_FIELDS, name)) throw new OptionsError(`${where}: unknown field "${name}" (valid: ${Object.keys(APP_FIELDS).join(', ')})`);
    }
    for (const [field, kind] of Object.entries(APP_FIELDS)) {
      const raw = (entry as Record<string, unknown>)[field];
      if (raw === undefined) {
        if (CREDENTIALS.includes(field)) throw new OptionsError(`${where}: "${field}" is required`);
        app[field] = defaults[field];
      } else {
        app[field] = parseValue(raw, kind, `${where} field "${field}"`, minimumOf(field as keyof AppConfig));
        if (app[field] === '' && CREDENTIALS.includes(field)) throw new OptionsError(`${where}: "${field}" must not be empty`);
      }
    }
    if (ids.has(app.id as string)) throw new OptionsError(`${where}: duplicate app id "${app.id}"`);
    if (keys.has(app.key as string)) throw new OptionsError(`${where}: duplicate app key "${app.key}"`);
    ids.add(app.id as string);
    keys.add(app.key as string);
    return app as unknown as AppConfig;
  });
}

/** The least value an app's numeric field takes: -1 (no limit) for rates and quotas, 1 for the limits with a server-wide default. */
export function minimumOf(field: keyof AppConfig): number | undefined {
  if (Object.hasOwn(APP_LIMIT_DEFAULTS, field)) return 1;
  return field.startsWith('max') ? -1 : undefined;
}

function parseValue(raw: unknown, kind: Kind, origin: string, min?: number, max?: number): unknown {
  const text = typeof raw === 'string' ? raw.trim() : raw;
  switch (kind) {
    case 'bool':
      if (text === true || text === 'true' || text === '1' || text === 1) return true;
      if (text === false || text === 'false' || text === '0' || text === 0) return false;
      throw new OptionsError(`${origin}: expected true, false, 1 or 0, got ${JSON.stringify(raw)}`);
    case 'int': {
      const n = typeof text === 'number' ? text : typeof text === 'string' && /^-?\d+$/.test(text) ? Number(text) : NaN;
      if (!Number.isSafeInteger(n)) throw new OptionsError(`${origin}: expected a whole number, got ${JSON.stringify(raw)}`);
      if (min !== undefined && n < min) throw new OptionsError(`${origin}: must be at least ${min}, got ${n}`);
      if (max !== undefined && n > max) throw new OptionsError(`${origin}: must be at most ${max}, got ${n}`);
      return n;
    }
    case 'percent': {
      // Decimals matter: on a large host one process rarely holds even 1% of memory.
      const n = typeof text === 'number' ? text : typeof text === 'string' && /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
      if (!(n > 0 && n <= 100)) throw new OptionsError(`${origin}: expected a percentage above 0 and at most 100, got ${JSON.stringify(raw)}`);
      return n;
    }
    case 'string':
      if (typeof text !== 'string') throw new OptionsError(`${origin}: expected a string, got ${JSON.stringify(raw)}`);
      return text;
    case 'url': {
      if (typeof text !== 'string') throw new OptionsError(`${origin}: expected a URL, got ${JSON.stringify(raw)}`);
      let url: URL;
      try {
        url = new URL(text);
      } catch {
        throw new OptionsError(`${origin}: not a valid URL: ${JSON.stringify(raw)}`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OptionsError(`${origin}: must be an http:// or https:// URL, got ${JSON.stringify(raw)}`);
      return text.replace(/\/+$/, '');
    }
    case 'driver':
      if (typeof text !== 'string' || !(METRICS_DRIVERS as readonly string[]).includes(text)) {
        throw new OptionsError(`${origin}: unknown metrics driver ${JSON.stringify(raw)} (valid: ${METRICS_DRIVERS.join(', ')})`);
      }
      return text;
    case 'adapter':
      if (typeof text !== 'string' || !(ADAPTER_DRIVERS as readonly string[]).includes(text)) {
        throw new OptionsError(`${origin}: unknown driver ${JSON.stringify(raw)} (valid: ${ADAPTER_DRIVERS.join(', ')})`);
      }
      return text;
    case 'metricPrefix':
      // Every metric name starts with it, so it must be a valid start of one on its own.
      if (typeof text !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(text)) {
        throw new OptionsError(`${origin}: must be letters, digits, _ and : only, not starting with a digit (a Prometheus metric name matches [a-zA-Z_:][a-zA-Z0-9_:]*), got ${JSON.stringify(raw)}`);
      }
      return text;
    case 'webhooks':
      return parseWebhooks(text, origin);
    case 'appManager':
      if (typeof text !== 'string' || !(APP_MANAGER_DRIVERS as readonly string[]).includes(text)) {
        throw new OptionsError(`${origin}: unknown app manager driver ${JSON.stringify(raw)} (valid: ${APP_MANAGER_DRIVERS.join(', ')})`);
      }
      return text;
    case 'sqlSsl':
      if (typeof text !== 'string' || !(SQL_SSL_MODES as readonly string[]).includes(text)) {
        throw new OptionsError(`${origin}: expected ${SQL_SSL_MODES.join(', ')}, got ${JSON.stringify(raw)}`);
      }
      return text;
    case 'table':
      // Put into SQL as an identifier: only plain names can be quoted safely on both databases.
      if (typeof text !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/.test(text)) {
        throw new OptionsError(`${origin}: expected a table name (letters, digits and _, optionally schema.table), got ${JSON.stringify(raw)}`);
      }
      return text;
  }
}
