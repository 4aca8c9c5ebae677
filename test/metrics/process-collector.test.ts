import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { countFds, ProcessCollector, type ProcessCollectorOptions } from '../../src/metrics/process-collector';
import { Registry } from '../../src/metrics/registry';
import { eventually } from '../helpers/server';

// Value of the sample line that starts with `series ` (name plus rendered labels).
function sample(body: string, series: string): number {
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `no sample ${series}`);
  return Number(line.slice(series.length + 1));
}

function statusKb(field: string): number {
  const match = new RegExp(`^${field}:\\s*(\\d+) kB`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'));
  assert.ok(match);
  return Number(match[1]);
}

function collector(prefix = '', options: ProcessCollectorOptions = {}): { registry: Registry; collector: ProcessCollector } {
  const registry = new Registry();
  return { registry, collector: new ProcessCollector(registry, { prefix, ...options }) };
}

test('families are prefixed, in prom-client order, with prom-client HELP texts', (t) => {
  const { registry, collector: c } = collector('pws_');
  t.after(() => c.stop());
  const body = registry.render();
  const types = [...body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
  assert.deepEqual(types, [
    'pws_process_cpu_user_seconds_total counter',
    'pws_process_cpu_system_seconds_total counter',
    'pws_process_cpu_seconds_total counter',
    'pws_process_start_time_seconds gauge',
    'pws_process_resident_memory_bytes gauge',
    'pws_process_virtual_memory_bytes gauge',
    'pws_process_heap_bytes gauge',
    'pws_process_open_fds gauge',
    'pws_process_max_fds gauge',
    'pws_nodejs_eventloop_lag_seconds gauge',
    'pws_nodejs_eventloop_lag_min_seconds gauge',
    'pws_nodejs_eventloop_lag_max_seconds gauge',
    'pws_nodejs_eventloop_lag_mean_seconds gauge',
    'pws_nodejs_eventloop_lag_stddev_seconds gauge',
    'pws_nodejs_eventloop_lag_p50_seconds gauge',
    'pws_nodejs_eventloop_lag_p90_seconds gauge',
    'pws_nodejs_eventloop_lag_p99_seconds gauge',
    'pws_nodejs_active_handles_total gauge',
    'pws_nodejs_active_requests_total gauge',
    'pws_nodejs_heap_size_total_bytes gauge',
    'pws_nodejs_heap_size_used_bytes gauge',
    'pws_nodejs_external_memory_bytes gauge',
    'pws_nodejs_heap_space_size_total_bytes gauge',
    'pws_nodejs_heap_space_size_used_bytes gauge',
    'pws_nodejs_heap_space_size_available_bytes gauge',
    'pws_nodejs_version_info gauge',
    'pws_nodejs_gc_duration_seconds histogram',
  ]);
  assert.ok(body.includes('# HELP pws_process_cpu_seconds_total Total user and system CPU time spent in seconds.\n'));
  assert.ok(body.includes('# HELP pws_nodejs_eventloop_lag_p99_seconds The 99th percentile of the recorded event loop delays.\n'));
  assert.ok(body.includes('# HELP pws_nodejs_heap_space_size_available_bytes Process heap space size available from Node.js in bytes.\n'));
  assert.ok(
    body.includes(
      '# HELP pws_nodejs_gc_duration_seconds Garbage collection duration by kind, one of major, minor, incremental or weakcb.\n',
    ),
  );
});

test('CPU seconds are totals since process start', (t) => {
  const { registry, collector: c } = collector();
  t.after(() => c.stop());
  const before = process.cpuUsage();
  const body = registry.render();
  const after = process.cpuUsage();
  const user = sample(body, 'process_cpu_user_seconds_total');
  const system = sample(body, 'process_cpu_system_seconds_total');
  assert.ok(user >= before.user / 1e6 && user <= after.user / 1e6, `${user}`);
  assert.ok(system >= before.system / 1e6 && system <= after.system / 1e6, `${system}`);
  assert.equal(sample(body, 'process_cpu_seconds_total'), Math.round((user + system) * 1e6) / 1e6);
});

test('memory, fds and start time match their sources', (t) => {
  const { registry, collector: c } = collector();
  t.after(() => c.stop());
  const body = registry.render();
  const rss = statusKb('VmRSS') * 1024;
  const resident = sample(body, 'process_resident_memory_bytes');
  assert.ok(Math.abs(resident - rss) <= rss * 0.05, `${resident} vs ${rss}`);
  assert.equal(resident % 1024, 0);
  assert.ok(Math.abs(sample(body, 'process_virtual_memory_bytes') - statusKb('VmSize') * 1024) <= statusKb('VmSize') * 1024 * 0.05);
  assert.ok(Math.abs(sample(body, 'process_heap_bytes') - statusKb('VmData') * 1024) <= statusKb('VmData') * 1024 * 0.05);

  const fds = fs.readdirSync('/proc/self/fd').length - 1;
  assert.ok(Math.abs(sample(body, 'process_open_fds') - fds) <= 2, `${sample(body, 'process_open_fds')} vs ${fds}`);
  const soft = /^Max open files\s+(\S+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'))?.[1];
  if (soft === 'unlimited') assert.ok(!body.includes('process_max_fds'));
  else assert.equal(sample(body, 'process_max_fds'), Number(soft));

  const start = Date.now() / 1000 - process.uptime();
  assert.ok(Math.abs(sample(body, 'process_start_time_seconds') - start) < 1);

  const heap = process.memoryUsage();
  assert.ok(Math.abs(sample(body, 'nodejs_heap_size_total_bytes') - heap.heapTotal) <= heap.heapTotal * 0.5);
  assert.ok(sample(body, 'nodejs_heap_size_used_bytes') > 0);
});

test('version info carries process.version and its parts, value 1', (t) => {
  const { registry, collector: c } = collector();
  t.after(() => c.stop());
  const [major, minor, patch] = process.version.slice(1).split('.');
  const series = `nodejs_version_info{version="${process.version}",major="${major}",minor="${minor}",patch="${patch}"}`;
  assert.equal(sample(registry.render(), series), 1);
});

test('heap spaces are labelled without the _space suffix', (t) => {
  const { registry, collector: c } = collector();
  t.after(() => c.stop());
  const body = registry.render();
  for (const space of v8.getHeapSpaceStatistics()) {
    const name = space.space_name.replace(/_space$/, '');
    assert.ok(sample(body, `nodejs_heap_space_size_total_bytes{space="${name}"}`) >= 0);
    assert.ok(sample(body, `nodejs_heap_space_size_used_bytes{space="${name}"}`) >= 0);
    assert.ok(sample(body, `nodejs_heap_space_size_available_bytes{space="${name}"}`) >= 0);
  }
  assert.ok(sample(body, 'nodejs_heap_space_size_total_bytes{space="old"}') > 0);
});

test('open fds: one stat of /proc/self/fd gives the count; a directory that reads size 0 is listed instead', () => {
  const listed = () => fs.readdirSync('/proc/self/fd').length - 1;
  const before = countFds()!;
  assert.ok(Math.abs(before - listed()) <= 1, `${before} vs ${listed()}`);
  // Ten more files open: the count follows exactly.
  const fds = Array.from({ length: 10 }, () => fs.openSync('/proc/self/status', 'r'));
  try {
    assert.equal(countFds(), before + 10);
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
  assert.equal(countFds(), before);
  // Kernels before 6.2 report 0 for /proc/self/fd; /proc/self/task does on every kernel, so it takes the listing path.
  assert.equal(fs.statSync('/proc/self/task').size, 0);
  assert.equal(countFds('/proc/self/task'), fs.readdirSync('/proc/self/task').length - 1);
  assert.equal(countFds('/no/such/dir'), null);
});

const DELAY_STATS = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'].map((s) => `nodejs_eventloop_lag_${s}_seconds`);

test('event-loop statistics are 0 until a window closes, then finite, and no render changes them', async (t) => {
  const { registry, collector: c } = collector('', { eventLoop: { resolutionMs: 10, windowMs: 100, windows: 3 } });
  t.after(() => c.stop());
  for (const body of [registry.render(), registry.render()]) {
    for (const name of DELAY_STATS) assert.equal(sample(body, name), 0, name);
    assert.equal(sample(body, 'nodejs_eventloop_lag_seconds'), 0);
  }
  await eventually(() => sample(registry.render(), 'nodejs_eventloop_lag_min_seconds') > 0, 10_000, 'a closed window');
  // Readers in a row (two Prometheus servers and a push, say) all read the same figures.
  const bodies = [registry.render(), registry.render(), registry.render()];
  for (const name of DELAY_STATS) {
    const values = bodies.map((body) => sample(body, name));
    assert.ok(Number.isFinite(values[0]) && values[0] >= 0 && values[0] < 5, `${name} ${values[0]}`);
    assert.deepEqual(values, [values[0], values[0], values[0]], name);
  }
  // An interval includes the 10 ms resolution, as monitorEventLoopDelay's readings do.
  assert.ok(sample(bodies[0], 'nodejs_eventloop_lag_min_seconds') >= 0.009);
  assert.ok(sample(bodies[0], 'nodejs_eventloop_lag_seconds') > 0, 'setImmediate lag measured after the previous scrape');
});

test('an event-loop stall shows in max and p99 for as long as its window is kept, then leaves', async (t) => {
  const { registry, collector: c } = collector('', { eventLoop: { resolutionMs: 10, windowMs: 100, windows: 3 } });
  t.after(() => c.stop());
  const stall = Date.now() + 250;
  while (Date.now() < stall);
  const max = () => sample(registry.render(), 'nodejs_eventloop_lag_max_seconds');
  await eventually(() => max() >= 0.25, 10_000, 'the stall in max');
  // Every reader keeps seeing it while a window holding it is kept, however often it scrapes.
  for (let i = 0; i < 5; i++) assert.ok(max() >= 0.25);
  await eventually(() => max() < 0.25, 10_000, 'the stall to leave the kept windows');
  assert.ok(sample(registry.render(), 'nodejs_eventloop_lag_p99_seconds') < 0.25);
});

test('every GC entry of a batch is observed, by kind', async (t) => {
  const { registry, collector: c } = collector();
  t.after(() => c.stop());
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const before = sample(registry.render(), 'nodejs_gc_duration_seconds_count{kind="major"}');
  // Synchronous forced collections reach the observer as one batch.
  for (let i = 0; i < 5; i++) gc();
  await sleep(50);
  const body = registry.render();
  const count = sample(body, 'nodejs_gc_duration_seconds_count{kind="major"}');
  assert.ok(count - before >= 5, `${before} -> ${count}`);
  assert.equal(sample(body, 'nodejs_gc_duration_seconds_bucket{kind="major",le="+Inf"}'), count);
  assert.ok(sample(body, 'nodejs_gc_duration_seconds_sum{kind="major"}') > 0);
  for (const kind of ['minor', 'major', 'incremental', 'weakcb']) {
    assert.ok(body.includes(`nodejs_gc_duration_seconds_bucket{kind="${kind}",le="0.001"} `), kind);
  }
});

test('after stop() GC is no longer observed', async () => {
  const { registry, collector: c } = collector();
  c.stop();
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  gc();
  await sleep(50);
  assert.equal(sample(registry.render(), 'nodejs_gc_duration_seconds_count{kind="major"}'), 0);
});
