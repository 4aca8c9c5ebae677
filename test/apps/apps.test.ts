// The set of apps while it changes: watchers, config changes in place or with a reconnect, and
// the metric series of apps that come and go.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Apps } from '../../src/apps/apps';
import type { AppState } from '../../src/apps/app-state';
import { PwsMetrics, seriesPerApp } from '../../src/metrics/pws-metrics';
import { Refusals } from '../../src/limits/refusals';
import { loadOptions, type AppConfig } from '../../src/options';

const base = loadOptions({}).apps[0];
const app = (id: string, more: Partial<AppConfig> = {}): AppConfig => ({ ...base, id, key: `${id}-key`, secret: `${id}-secret`, ...more });

test('watchers hear of the apps already there, then of every add, change and removal', () => {
  const apps = new Apps([app('a')]);
  const heard: string[] = [];
  apps.watch({ added: (x) => heard.push(`+${x.config.id}`), changed: (x, before) => heard.push(`~${x.config.id}:${before.secret}>${x.config.secret}`), removed: (x) => heard.push(`-${x.config.id}`) });
  const b = apps.add(app('b'));
  apps.update(b, app('b', { secret: 'new' }));
  apps.remove(apps.findById('a')!);
  assert.deepEqual(heard, ['+a', '+b', '~b:b-secret>new', '-a']);
  assert.equal(apps.findByKey('a-key'), undefined);
  assert.throws(() => apps.add(app('b')), /app id "b" is taken/);
  assert.throws(() => apps.add({ ...app('c'), key: 'b-key' }), /app key "b-key" is taken by app "b"/);
});

test('a change read at each use keeps the app and its sockets; a key or per-socket change rebuilds what sockets hold and asks them to reconnect', () => {
  const apps = new Apps([app('a')]);
  const a = apps.findById('a')!;
  assert.equal(apps.update(a, app('a', { maxConnections: 5, enabled: false, maxPresenceMembersPerChannel: 3 })), false);
  assert.equal(a.config.maxConnections, 5);
  assert.equal(a.clientEventBuckets, null);
  assert.equal(apps.update(a, app('a', { maxClientEventsPerSecond: 10 })), true);
  assert.notEqual(a.clientEventBuckets, null);
  assert.equal(apps.update(a, app('a', { maxClientEventsPerSecond: 10, key: 'other-key' })), true);
  assert.equal(apps.findByKey('a-key'), undefined);
  assert.equal(apps.findByKey('other-key'), a);
});

test("a removed app's series leave /metrics; an app added later gets slots in step in every family, created before or after", () => {
  const apps = new Apps([app('a'), app('b')]);
  const metrics = new PwsMetrics({ prefix: 'pws_', port: 6001 });
  metrics.addApps(apps);
  const refusals = new Refusals(metrics, apps);
  const slotOf = (x: AppState) => x.metricsSlot;
  apps.remove(apps.findById('a')!);
  const c = apps.add(app('c'));
  assert.equal(slotOf(c), 2, 'never the slot of the removed app');
  refusals.count(c, 'client_events');
  metrics.connected.add(c.metricsSlot, 1);
  // A family made after the removal (as a feature's first use makes it) keeps the same slots.
  const late = metrics.registry.counter({ name: 'pws_late_total', help: 'Made late.', labelNames: ['app_id'] });
  seriesPerApp(late, apps);
  late.add(c.metricsSlot, 2);
  const body = metrics.render();
  metrics.stop();
  assert.ok(!body.includes('app_id="a"'), 'no series of the removed app');
  assert.match(body, /^pws_6001_connected\{app_id="c"\} 1$/m);
  assert.match(body, /^pws_limit_refusals_total\{app_id="c",reason="client_events"\} 1$/m);
  assert.match(body, /^pws_limit_refusals_total\{app_id="b",reason="client_events"\} 0$/m);
  assert.match(body, /^pws_late_total\{app_id="b"\} 0\npws_late_total\{app_id="c"\} 2$/m);
});
