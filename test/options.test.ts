// Configuration (src/options.ts): every variable of OPTION_SPECS parses and refuses bad values by
// name, the JSON config file and its apps, the precedence defaults < file < environment, and
// docs/configuration.md kept in step with OPTION_SPECS.
import { after, test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants } from 'node:buffer';
import { X509Certificate } from 'node:crypto';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { OptionsError } from '../src/protocol/errors';
import { OPTION_SPECS, loadOptions, type Options } from '../src/options';
import { TLS } from './helpers/tls';

type Spec = (typeof OPTION_SPECS)[number];

/** The parsed value of one option, whether it lives on Options or on the default app. */
function valueOf(options: Options, spec: Spec): unknown {
  if (spec.key.startsWith('app.')) return options.apps[0][spec.key.slice(4) as keyof Options['apps'][number]];
  return options[spec.key as keyof Options];
}

/** Like `refuses`, for messages that end in a reason worded by OpenSSL. */
function refusesLike(env: Record<string, string>, message: RegExp): void {
  assert.throws(
    () => loadOptions(env),
    (err: unknown) => {
      assert.ok(err instanceof OptionsError, `expected an OptionsError, got ${err}`);
      assert.match(err.message, message);
      assert.ok(!err.message.includes('\n'));
      return true;
    },
  );
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Asserts that loading throws an OptionsError whose single-line message is exactly `message`. */
function refuses(env: Record<string, string>, message: string, configPath?: string): void {
  assert.throws(
    () => loadOptions(env, configPath),
    (err: unknown) => {
      assert.ok(err instanceof OptionsError, `expected an OptionsError, got ${err}`);
      assert.equal(err.message, message);
      assert.ok(!err.message.includes('\n'));
      return true;
    },
  );
}

const dir = mkdtempSync(join(tmpdir(), 'pws-options-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

/** Writes `content` (JSON-encoded unless a string) to a fresh file and returns its path. */
function configFile(content: unknown): string {
  const path = join(dir, `config-${++files}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

const byKind = (kind: string) => OPTION_SPECS.filter((s) => s.kind === kind);
const { MAX_STRING_LENGTH } = constants;

describe('environment variables', () => {
  test('with no environment and no file, every option takes its default from OPTION_SPECS', () => {
    const options = loadOptions({});
    for (const spec of OPTION_SPECS) {
      const expected =
        spec.env === 'METRICS_PUSHGATEWAY_INSTANCE'
          ? `${hostname()}:6001`
          : spec.kind === 'int' || spec.kind === 'percent'
            ? Number(spec.default)
            : spec.kind === 'bool'
              ? spec.default === 'true'
              : spec.kind === 'webhooks'
                ? JSON.parse(spec.default)
                : spec.default;
      assert.deepEqual(valueOf(options, spec), expected, spec.env);
    }
    assert.deepEqual(options.apps, [
      { id: 'app-id', key: 'app-key', secret: 'app-secret', maxConnections: -1, maxBackendEventsPerSecond: -1, maxClientEventsPerSecond: -1, maxReadRequestsPerSecond: -1, enableClientMessages: false, enabled: true, userAuthentication: false, enableSubscriptionCount: false, webhooks: [], enableWatchlistEvents: false, maxPresenceMembersPerChannel: 100, maxPresenceMemberSizeInKb: 2, maxChannelNameLength: 200, maxEventChannelsAtOnce: 100, maxEventNameLength: 200, maxEventPayloadInKb: 100, maxEventBatchSize: 10 },
    ]);
  });

  test('every integer variable is read, with surrounding spaces ignored', () => {
    for (const spec of byKind('int')) {
      const n = (spec.min ?? 0) + 7;
      assert.equal(valueOf(loadOptions({ [spec.env]: ` ${n} ` }), spec), n, spec.env);
    }
  });

  test('every integer variable refuses a value that is not a whole number, naming the variable', () => {
    for (const spec of byKind('int')) {
      for (const bad of ['abc', '1.5', '1e3', '0x10', '12abc']) refuses({ [spec.env]: bad }, `${spec.env}: expected a whole number, got ${JSON.stringify(bad)}`);
    }
  });

  test('every integer variable refuses a value below its minimum and accepts the minimum', () => {
    for (const spec of byKind('int')) {
      assert.equal(typeof spec.min, 'number', `${spec.env} has no minimum`);
      const min = spec.min!;
      assert.equal(valueOf(loadOptions({ [spec.env]: String(min) }), spec), min, spec.env);
      refuses({ [spec.env]: String(min - 1) }, `${spec.env}: must be at least ${min}, got ${min - 1}`);
    }
  });

  test('every integer variable with a maximum accepts it and refuses one more', () => {
    for (const spec of byKind('int').filter((s) => s.max !== undefined)) {
      const max = spec.max!;
      assert.equal(valueOf(loadOptions({ [spec.env]: String(max) }), spec), max, spec.env);
      refuses({ [spec.env]: String(max + 1) }, `${spec.env}: must be at most ${max}, got ${max + 1}`);
    }
  });

  // Each of these integers ends where a narrower integer or a fixed limit would wrap it or fail on it.
  test('integers are capped where uWS, V8 and Node timers stop: ports, WS_MAX_MESSAGE_SIZE, HTTP_MAX_REQUEST_SIZE, timers', () => {
    const max = (env: string) => OPTION_SPECS.find((s) => s.env === env)!.max;
    // uWS takes a port modulo 65536, so 70000 would silently listen on 4464.
    assert.deepEqual([max('PORT'), max('METRICS_SERVER_PORT')], [65535, 65535]);
    // uWS gets twice the limit as its 32-bit payload ceiling (2097152 KB wrapped to 0 and dropped
    // every message), and each accepted message is decoded into one JS string.
    const ws = max('WS_MAX_MESSAGE_SIZE')!;
    assert.ok(ws * 1024 * 2 <= 2 ** 32 - 1);
    assert.ok(ws * 1024 <= MAX_STRING_LENGTH && (ws + 1) * 1024 > MAX_STRING_LENGTH);
    // A request body is decoded into one JS string too.
    assert.equal(max('HTTP_MAX_REQUEST_SIZE'), ws);
    // setTimeout fires at once, with a TimeoutOverflowWarning, for a delay above 2^31 - 1 ms.
    assert.deepEqual([max('SHUTDOWN_GRACE_PERIOD'), max('METRICS_PUSHGATEWAY_INTERVAL')], [2 ** 31 - 1, 2 ** 31 - 1]);
    refuses({ WS_MAX_MESSAGE_SIZE: '2097152' }, `WS_MAX_MESSAGE_SIZE: must be at most ${ws}, got 2097152`);
  });

  test('METRICS_SERVER_PORT equal to a non-zero PORT is refused (0 is the way to share PORT)', () => {
    refuses({ PORT: '7001', METRICS_SERVER_PORT: '7001' }, 'METRICS_SERVER_PORT: must differ from PORT (7001); 0 serves /metrics on PORT');
    refuses({ METRICS_SERVER_PORT: '6001' }, 'METRICS_SERVER_PORT: must differ from PORT (6001); 0 serves /metrics on PORT');
    refuses({ METRICS_SERVER_PORT: '7001' }, 'METRICS_SERVER_PORT: must differ from PORT (7001); 0 serves /metrics on PORT', configFile({ PORT: 7001 }));
    assert.deepEqual([loadOptions({ PORT: '0', METRICS_SERVER_PORT: '0' }).metricsServerPort, loadOptions({ PORT: '0', METRICS_SERVER_PORT: '7002' }).metricsServerPort], [0, 7002]);
    assert.equal(loadOptions({ PORT: '7001', METRICS_SERVER_PORT: '7002' }).metricsServerPort, 7002);
  });

  test('every boolean variable reads true/1 as true and false/0 as false, and refuses anything else', () => {
    for (const spec of byKind('bool')) {
      for (const [text, value] of [['true', true], ['1', true], ['false', false], ['0', false], [' true ', true]] as const) {
        // CONSOLE_ENABLED needs its password (test/console/console-http.test.ts refuses it without).
        assert.equal(valueOf(loadOptions({ CONSOLE_PASSWORD: 'p', [spec.env]: text }), spec), value, `${spec.env}=${text}`);
      }
      for (const bad of ['yes', 'TRUE', '2', 'on']) refuses({ [spec.env]: bad }, `${spec.env}: expected true, false, 1 or 0, got ${JSON.stringify(bad)}`);
    }
  });

  // Checked forms: TLS files (below), Redis addresses (below).
  const FORMED = ['SSL_CERT', 'SSL_KEY', 'REDIS_URL', 'DB_REDIS_CLUSTER_NODES', 'DB_REDIS_SENTINELS'];

  test('every string variable is read as given (TLS files and Redis addresses: see below)', () => {
    for (const spec of byKind('string').filter((s) => !FORMED.includes(s.env))) {
      assert.equal(valueOf(loadOptions({ [spec.env]: 'some value' }), spec), 'some value', spec.env);
    }
  });

  test('ADAPTER_DRIVER is local or redis; Redis is reached one way, in a form the client takes', () => {
    assert.equal(loadOptions({}).adapterDriver, 'local');
    assert.equal(loadOptions({ ADAPTER_DRIVER: 'redis' }).adapterDriver, 'redis');
    refuses({ ADAPTER_DRIVER: 'nats' }, 'ADAPTER_DRIVER: unknown driver "nats" (valid: local, redis)');
    assert.equal(loadOptions({ REDIS_URL: 'rediss://u:p@h:6380/2' }).redisUrl, 'rediss://u:p@h:6380/2');
    refuses({ REDIS_URL: 'http://h' }, 'REDIS_URL: expected redis://… or rediss://…, got "http://h"');
    assert.equal(loadOptions({ DB_REDIS_CLUSTER_NODES: 'a:7000, b:7001' }).redisClusterNodes, 'a:7000, b:7001');
    refuses({ DB_REDIS_CLUSTER_NODES: 'a:7000,b' }, 'DB_REDIS_CLUSTER_NODES: expected host:port[,host:port…], got "b"');
    refuses({ DB_REDIS_SENTINELS: 'a:99999' }, 'DB_REDIS_SENTINELS: expected host:port[,host:port…], got "a:99999"');
    refuses({ REDIS_URL: 'redis://h', DB_REDIS_SENTINELS: 'a:26379' }, 'DB_REDIS_SENTINELS: set only one of REDIS_URL, DB_REDIS_CLUSTER_NODES and DB_REDIS_SENTINELS');
  });

  test('HTTP_ACCEPT_TRAFFIC_MEMORY_THRESHOLD takes a decimal percentage above 0 and at most 100', () => {
    for (const [text, value] of [['0.05', 0.05], ['85', 85], ['100', 100], ['12.5', 12.5]] as const) {
      assert.equal(loadOptions({ HTTP_ACCEPT_TRAFFIC_MEMORY_THRESHOLD: text }).acceptTrafficMemoryThreshold, value);
    }
    for (const bad of ['0', '0.0', '100.5', '-1', 'abc', '1e-3', '.5']) {
      refuses({ HTTP_ACCEPT_TRAFFIC_MEMORY_THRESHOLD: bad }, `HTTP_ACCEPT_TRAFFIC_MEMORY_THRESHOLD: expected a percentage above 0 and at most 100, got ${JSON.stringify(bad)}`);
    }
  });

  test('METRICS_PROMETHEUS_PREFIX must start a valid Prometheus metric name', () => {
    for (const prefix of ['acme_ws_', 'a', '_x', 'ns:sub_', 'A1_']) assert.equal(loadOptions({ METRICS_PROMETHEUS_PREFIX: prefix }).metricsPrefix, prefix);
    const rule = 'must be letters, digits, _ and : only, not starting with a digit (a Prometheus metric name matches [a-zA-Z_:][a-zA-Z0-9_:]*)';
    for (const bad of ['my-app_', '1abc', 'a b', 'pws.', 'é_']) refuses({ METRICS_PROMETHEUS_PREFIX: bad }, `METRICS_PROMETHEUS_PREFIX: ${rule}, got ${JSON.stringify(bad)}`);
    const path = configFile({ METRICS_PROMETHEUS_PREFIX: '' });
    refuses({}, `METRICS_PROMETHEUS_PREFIX in ${path}: ${rule}, got ""`, path);
  });

  test('METRICS_DRIVER is prometheus or pushgateway', () => {
    assert.equal(loadOptions({ METRICS_DRIVER: 'pushgateway' }).metricsDriver, 'pushgateway');
    assert.equal(loadOptions({ METRICS_DRIVER: 'prometheus' }).metricsDriver, 'prometheus');
    refuses({ METRICS_DRIVER: 'nope' }, 'METRICS_DRIVER: unknown metrics driver "nope" (valid: prometheus, pushgateway)');
  });

  test('METRICS_PUSHGATEWAY_URL must be an http(s) URL; a trailing slash is dropped', () => {
    assert.equal(loadOptions({ METRICS_PUSHGATEWAY_URL: 'https://gw.example:9091/' }).pushgatewayUrl, 'https://gw.example:9091');
    assert.equal(loadOptions({ METRICS_PUSHGATEWAY_URL: 'http://10.0.0.1:9091/base' }).pushgatewayUrl, 'http://10.0.0.1:9091/base');
    refuses({ METRICS_PUSHGATEWAY_URL: 'gateway:9091x' }, 'METRICS_PUSHGATEWAY_URL: must be an http:// or https:// URL, got "gateway:9091x"');
    refuses({ METRICS_PUSHGATEWAY_URL: 'ftp://gw' }, 'METRICS_PUSHGATEWAY_URL: must be an http:// or https:// URL, got "ftp://gw"');
    refuses({ METRICS_PUSHGATEWAY_URL: 'not a url' }, 'METRICS_PUSHGATEWAY_URL: not a valid URL: "not a url"');
  });

  test('METRICS_PUSHGATEWAY_INSTANCE defaults to <hostname>:<PORT> and can be set', () => {
    assert.equal(loadOptions({ PORT: '7123' }).pushgatewayInstance, `${hostname()}:7123`);
    assert.equal(loadOptions({ PORT: '7123', METRICS_PUSHGATEWAY_INSTANCE: 'node-a' }).pushgatewayInstance, 'node-a');
  });

  test('SSL_CERT and SSL_KEY go together and must name readable files', () => {
    const options = loadOptions({ SSL_CERT: TLS.cert, SSL_KEY: TLS.key, SSL_PASS: 'pass' });
    assert.deepEqual([options.sslCert, options.sslKey, options.sslPass], [TLS.cert, TLS.key, 'pass']);
    refuses({ SSL_CERT: TLS.cert }, 'SSL_KEY: must be set too when SSL_CERT is set');
    refuses({ SSL_KEY: TLS.key }, 'SSL_CERT: must be set too when SSL_KEY is set');
    const missing = join(dir, 'missing.pem');
    refuses({ SSL_CERT: missing, SSL_KEY: TLS.key }, `SSL_CERT: cannot read ${missing} (ENOENT)`);
    refuses({ SSL_CERT: TLS.cert, SSL_KEY: missing }, `SSL_KEY: cannot read ${missing} (ENOENT)`);
  });

  // uWS reports each of these only as "App construction failed".
  test('SSL_CERT must hold a PEM certificate, naming the file and the reason', () => {
    const der = configFile('');
    writeFileSync(der, new X509Certificate(readFileSync(TLS.cert)).raw);
    for (const path of [configFile('not a certificate'), der, TLS.key, configFile('-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n')]) {
      refusesLike({ SSL_CERT: path, SSL_KEY: TLS.key }, new RegExp(`^SSL_CERT: ${escape(path)} is not a PEM certificate \\([^)]+\\)$`));
    }
  });

  test('SSL_KEY must hold a PEM private key that matches the certificate', () => {
    for (const path of [configFile('not a key'), TLS.cert, configFile('-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n')]) {
      refusesLike({ SSL_CERT: TLS.cert, SSL_KEY: path }, new RegExp(`^SSL_KEY: ${escape(path)} is not a PEM private key \\([^)]+\\)$`));
    }
    refuses({ SSL_CERT: TLS.cert, SSL_KEY: TLS.otherKey }, `SSL_KEY: ${TLS.otherKey} does not match the certificate in ${TLS.cert}`);
  });

  test('an encrypted SSL_KEY needs the right SSL_PASS', () => {
    assert.equal(loadOptions({ SSL_CERT: TLS.cert, SSL_KEY: TLS.encryptedKey, SSL_PASS: TLS.pass }).sslPass, TLS.pass);
    refuses({ SSL_CERT: TLS.cert, SSL_KEY: TLS.encryptedKey }, `SSL_PASS: must be set: ${TLS.encryptedKey} is an encrypted key`);
    refuses({ SSL_CERT: TLS.cert, SSL_KEY: TLS.encryptedKey, SSL_PASS: 'wrong' }, `SSL_PASS: does not decrypt ${TLS.encryptedKey}`);
  });

  test('a variable set to the empty string counts as unset', () => {
    const options = loadOptions({ PORT: '', DEBUG: '', METRICS_DRIVER: '', DEFAULT_APP_SECRET: '' });
    assert.deepEqual([options.port, options.debug, options.metricsDriver, options.apps[0].secret], [6001, false, 'prometheus', 'app-secret']);
  });

  test('DEFAULT_APP_* variables make the one default app', () => {
    const options = loadOptions({
      DEFAULT_APP_ID: 'my-id',
      DEFAULT_APP_KEY: 'my-key',
      DEFAULT_APP_SECRET: 'my-secret',
      DEFAULT_APP_MAX_CONNS: '10',
      DEFAULT_APP_ENABLE_CLIENT_MESSAGES: '1',
      DEFAULT_APP_ENABLED: '0',
      DEFAULT_APP_USER_AUTHENTICATION: 'true',
      DEFAULT_APP_WEBHOOKS: '[{"url": "http://h/w", "event_types": ["client_event"]}]',
      DEFAULT_APP_ENABLE_WATCHLIST_EVENTS: 'true',
    });
    const webhooks = [{ url: 'http://h/w', eventTypes: ['client_event'], headers: {}, channelNameStartsWith: '', channelNameEndsWith: '' }];
    assert.deepEqual(options.apps, [{ id: 'my-id', key: 'my-key', secret: 'my-secret', maxConnections: 10, maxBackendEventsPerSecond: -1, maxClientEventsPerSecond: -1, maxReadRequestsPerSecond: -1, enableClientMessages: true, enabled: false, userAuthentication: true, enableSubscriptionCount: false, webhooks, enableWatchlistEvents: true, maxPresenceMembersPerChannel: 100, maxPresenceMemberSizeInKb: 2, maxChannelNameLength: 200, maxEventChannelsAtOnce: 100, maxEventNameLength: 200, maxEventPayloadInKb: 100, maxEventBatchSize: 10 }]);
  });
});

describe('config file', () => {
  test('sets options by their variable names, as JSON values or strings', () => {
    const path = configFile({ PORT: 7001, DEBUG: true, HOST: '127.0.0.1', ACTIVITY_TIMEOUT: '30', METRICS_ENABLED: '1', HTTP_ACCEPT_TRAFFIC_MEMORY_THRESHOLD: 2.5 });
    const o = loadOptions({}, path);
    assert.deepEqual([o.port, o.debug, o.host, o.activityTimeout, o.metricsEnabled, o.acceptTrafficMemoryThreshold], [7001, true, '127.0.0.1', 30, true, 2.5]);
  });

  test('precedence: defaults < file < environment', () => {
    const path = configFile({ PORT: 7001, ACTIVITY_TIMEOUT: 30, DEBUG: true });
    const o = loadOptions({ ACTIVITY_TIMEOUT: '60', DEBUG: 'false' }, path);
    // PORT from the file, ACTIVITY_TIMEOUT and DEBUG from the environment, EVENT_MAX_BATCH_SIZE from the defaults.
    assert.deepEqual([o.port, o.activityTimeout, o.debug, o.eventMaxBatchSize], [7001, 60, false, 10]);
  });

  test('apps: several apps with their own credentials; omitted fields take the DEFAULT_APP_* values', () => {
    const path = configFile({
      DEFAULT_APP_ENABLE_CLIENT_MESSAGES: true,
      apps: [
        { id: 'a', key: 'key-a', secret: 'secret-a' },
        { id: 'b', key: 'key-b', secret: 'secret-b', maxConnections: 5, enableClientMessages: false, enabled: false, userAuthentication: true, enableWatchlistEvents: true },
      ],
    });
    const o = loadOptions({ DEFAULT_APP_MAX_CONNS: '100' }, path);
    assert.deepEqual(o.apps, [
      { id: 'a', key: 'key-a', secret: 'secret-a', maxConnections: 100, maxBackendEventsPerSecond: -1, maxClientEventsPerSecond: -1, maxReadRequestsPerSecond: -1, enableClientMessages: true, enabled: true, userAuthentication: false, enableSubscriptionCount: false, webhooks: [], enableWatchlistEvents: false, maxPresenceMembersPerChannel: 100, maxPresenceMemberSizeInKb: 2, maxChannelNameLength: 200, maxEventChannelsAtOnce: 100, maxEventNameLength: 200, maxEventPayloadInKb: 100, maxEventBatchSize: 10 },
      { id: 'b', key: 'key-b', secret: 'secret-b', maxConnections: 5, maxBackendEventsPerSecond: -1, maxClientEventsPerSecond: -1, maxReadRequestsPerSecond: -1, enableClientMessages: false, enabled: false, userAuthentication: true, enableSubscriptionCount: false, webhooks: [], enableWatchlistEvents: true, maxPresenceMembersPerChannel: 100, maxPresenceMemberSizeInKb: 2, maxChannelNameLength: 200, maxEventChannelsAtOnce: 100, maxEventNameLength: 200, maxEventPayloadInKb: 100, maxEventBatchSize: 10 },
    ]);
  });

  test('with apps in the file, the default app is not created', () => {
    const path = configFile({ apps: [{ id: 'a', key: 'key-a', secret: 'secret-a' }] });
    assert.deepEqual(
      loadOptions({ DEFAULT_APP_ID: 'ignored' }, path).apps.map((a) => a.id),
      ['a'],
    );
  });

  test('a file that cannot be read is refused, naming it and the reason', () => {
    const missing = join(dir, 'missing.json');
    refuses({}, `--config ${missing}: cannot read the file (ENOENT)`, missing);
    const folder = join(dir, 'a-folder.json');
    mkdirSync(folder);
    refuses({}, `--config ${folder}: cannot read the file (EISDIR)`, folder);
  });

  test('a file that is not valid JSON is refused', () => {
    const path = configFile('{"PORT": 6001,');
    assert.throws(() => loadOptions({}, path), (err: unknown) => err instanceof OptionsError && err.message.startsWith(`--config ${path}: not valid JSON (`));
  });

  const refusals: [string, unknown, (path: string) => string][] = [
    ['a JSON array', [], (p) => `--config ${p}: the file must hold a JSON object`],
    ['JSON null', 'null', (p) => `--config ${p}: the file must hold a JSON object`],
    ['an unknown key', { PORT: 1, PROT: 2 }, (p) => `--config ${p}: unknown option "PROT" (see pws-server start --help)`],
    ['a bad value', { PORT: 'abc' }, (p) => `PORT in ${p}: expected a whole number, got "abc"`],
    ['a fractional integer', { EVENT_MAX_BATCH_SIZE: 2.5 }, (p) => `EVENT_MAX_BATCH_SIZE in ${p}: expected a whole number, got 2.5`],
    ['a string option given a number', { HOST: 127 }, (p) => `HOST in ${p}: expected a string, got 127`],
    ['an empty DEFAULT_APP_SECRET', { DEFAULT_APP_SECRET: '' }, (p) => `DEFAULT_APP_SECRET in ${p}: must not be empty`],
    ['apps not an array', { apps: {} }, (p) => `apps in ${p}: must be a non-empty array of apps`],
    ['an empty apps array', { apps: [] }, (p) => `apps in ${p}: must be a non-empty array of apps`],
    ['an app that is not an object', { apps: ['a'] }, (p) => `apps[0] in ${p}: must be an object`],
    ['an app without id', { apps: [{ key: 'k', secret: 's' }] }, (p) => `apps[0] in ${p}: "id" is required`],
    ['an app without key', { apps: [{ id: 'a', secret: 's' }] }, (p) => `apps[0] in ${p}: "key" is required`],
    ['an app without secret', { apps: [{ id: 'a', key: 'k' }] }, (p) => `apps[0] in ${p}: "secret" is required`],
    ['an app with an empty secret', { apps: [{ id: 'a', key: 'k', secret: ' ' }] }, (p) => `apps[0] in ${p}: "secret" must not be empty`],
    ['an app with an empty id', { apps: [{ id: '', key: 'k', secret: 's' }] }, (p) => `apps[0] in ${p}: "id" must not be empty`],
    ['an app with a numeric id', { apps: [{ id: 1, key: 'k', secret: 's' }] }, (p) => `apps[0] in ${p} field "id": expected a string, got 1`],
    ['an app with an unknown field', { apps: [{ id: 'a', key: 'k', secret: 's', max_connections: 1 }] }, (p) => `apps[0] in ${p}: unknown field "max_connections" (valid: id, key, secret, maxConnections, maxBackendEventsPerSecond, maxClientEventsPerSecond, maxReadRequestsPerSecond, enableClientMessages, enabled, userAuthentication, enableSubscriptionCount, webhooks, enableWatchlistEvents, maxPresenceMembersPerChannel, maxPresenceMemberSizeInKb, maxChannelNameLength, maxEventChannelsAtOnce, maxEventNameLength, maxEventPayloadInKb, maxEventBatchSize)`],
    ['an app with a bad maxConnections', { apps: [{ id: 'a', key: 'k', secret: 's', maxConnections: -2 }] }, (p) => `apps[0] in ${p} field "maxConnections": must be at least -1, got -2`],
    ['an app with a bad boolean', { apps: [{ id: 'a', key: 'k', secret: 's', enabled: 'yes' }] }, (p) => `apps[0] in ${p} field "enabled": expected true, false, 1 or 0, got "yes"`],
    [
      'two apps with one id',
      { apps: [{ id: 'a', key: 'k1', secret: 's' }, { id: 'b', key: 'k2', secret: 's' }, { id: 'a', key: 'k3', secret: 's' }] },
      (p) => `apps[2] in ${p}: duplicate app id "a"`,
    ],
    ['two apps with one key', { apps: [{ id: 'a', key: 'k', secret: 's1' }, { id: 'b', key: 'k', secret: 's2' }] }, (p) => `apps[1] in ${p}: duplicate app key "k"`],
  ];
  for (const [what, content, message] of refusals) {
    test(`a file with ${what} is refused with a message naming the entry`, () => {
      const path = configFile(content);
      refuses({}, message(path), path);
    });
  }

  // An `in` check would see the names every object inherits from Object.prototype.
  test('keys named after JavaScript built-ins are unknown, at the top level and in an app', () => {
    for (const name of ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf']) {
      const top = configFile(`{"PORT": 7001, ${JSON.stringify(name)}: 1}`);
      refuses({}, `--config ${top}: unknown option "${name}" (see pws-server start --help)`, top);
      const app = configFile(`{"apps": [{"id": "a", "key": "k", "secret": "s", ${JSON.stringify(name)}: 1}]}`);
      refuses({}, `apps[0] in ${app}: unknown field "${name}" (valid: id, key, secret, maxConnections, maxBackendEventsPerSecond, maxClientEventsPerSecond, maxReadRequestsPerSecond, enableClientMessages, enabled, userAuthentication, enableSubscriptionCount, webhooks, enableWatchlistEvents, maxPresenceMembersPerChannel, maxPresenceMemberSizeInKb, maxChannelNameLength, maxEventChannelsAtOnce, maxEventNameLength, maxEventPayloadInKb, maxEventBatchSize)`, app);
    }
  });

  test('an environment variable with a bad value is refused even when the file has a good one', () => {
    refuses({ PORT: 'abc' }, 'PORT: expected a whole number, got "abc"', configFile({ PORT: 7001 }));
  });
});

describe('docs/configuration.md', () => {
  const doc = readFileSync(join(__dirname, '..', '..', 'docs', 'configuration.md'), 'utf8');

  function type(spec: Spec): string {
    switch (spec.kind) {
      case 'int':
        return `integer ≥ ${spec.min}${spec.max === undefined ? '' : `, ≤ ${spec.max}`}`;
      case 'percent':
        return 'percent, > 0 and ≤ 100';
      case 'bool':
        return 'boolean';
      case 'url':
        return 'http(s) URL';
      case 'driver':
        return 'prometheus or pushgateway';
      case 'adapter':
        return 'local or redis';
      case 'metricPrefix':
        return 'metric name prefix';
      case 'webhooks':
        return 'JSON array';
      case 'appManager':
        return 'config, postgres or mysql';
      case 'sqlSsl':
        return 'off, on or verify';
      case 'table':
        return 'table name';
      default:
        return 'string';
    }
  }

  test('its options table is exactly OPTION_SPECS: every variable, default, type and meaning, in order', () => {
    const expected = OPTION_SPECS.map((s) => `| \`${s.env}\` | ${s.default === '' ? 'unset' : `\`${s.default}\``} | ${type(s)} | ${s.help} |`);
    const rows = doc.split('\n').filter((line) => /^\| `[A-Z_]+` \|/.test(line));
    assert.deepEqual(rows, expected, `docs/configuration.md is out of date; its table should read:\n${expected.join('\n')}`);
  });

  test('its example config file loads, with two apps', () => {
    const example = /```json\n([\s\S]*?)\n```/.exec(doc);
    assert.ok(example, 'no ```json example in docs/configuration.md');
    const options = loadOptions({}, configFile(example[1]));
    assert.deepEqual(
      options.apps.map((a) => [a.id, a.key]),
      [
        ['chat', 'chat-key'],
        ['dashboard', 'dashboard-key'],
      ],
    );
  });
});
