// The process and Node.js runtime families that dashboards built for prom-client's
// default metrics expect: same names, types and HELP texts, but values read at scrape
// time from their true sources (CPU since process start, every GC entry counted, no
// garbage when the event-loop monitor saw no sample).
import * as fs from 'node:fs';
import { IntervalHistogram, monitorEventLoopDelay, performance, PerformanceObserver, constants } from 'node:perf_hooks';
import * as v8 from 'node:v8';
import { Counter } from './counter';
import { Gauge } from './gauge';
import { Registry } from './registry';

/** Options of a process collector. */
export interface ProcessCollectorOptions {
  /** Put before every family name, e.g. `pws_`. */
  prefix?: string;
}

// Bucket bounds of `nodejs_gc_duration_seconds`, as prom-client's.
const GC_DURATION_BUCKETS: readonly number[] = [0.001, 0.01, 0.1, 1, 2, 5];

// Slot of a label-less family's only series.
const ONLY = 0;

// The monitor's sampling period; its readings include it, as prom-client's do.
const EVENT_LOOP_RESOLUTION_MS = 10;

const GC_KINDS: ReadonlyArray<[number, string]> = [
  [constants.NODE_PERFORMANCE_GC_MINOR, 'minor'],
  [constants.NODE_PERFORMANCE_GC_MAJOR, 'major'],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, 'incremental'],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, 'weakcb'],
];

// Undocumented but stable since Node 0.x; prom-client reads the same.
interface ProcessInternals {
  _getActiveHandles?: () => unknown[];
  _getActiveRequests?: () => unknown[];
}

// A 'gc' performance entry; the typings leave `detail` out.
interface GcEntry {
  detail?: { kind?: number };
}

function readProc(path: string): string | null {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

// Linux 6.2 and later give the count as the size of /proc/self/fd: listing the directory instead
// made a string per descriptor, 15 ms of CPU per scrape at 18,000 sockets. Older kernels say 0.
function countFds(): number | null {
  try {
    const size = fs.statSync('/proc/self/fd').size;
    if (size > 0) return size;
    // The directory handle that readdir opens is itself listed.
    return fs.readdirSync('/proc/self/fd').length - 1;
  } catch {
    return null;
  }
}

const VM_RSS = /^VmRSS:\s*(\d+) kB/m;
const VM_SIZE = /^VmSize:\s*(\d+) kB/m;
const VM_DATA = /^VmData:\s*(\d+) kB/m;

// A /proc/self/status field in bytes (the file speaks kB), or null when absent.
function statusBytes(status: string, field: RegExp): number | null {
  const match = field.exec(status);
  return match ? Number(match[1]) * 1024 : null;
}

// Soft limit of open files, or null when unknown or unlimited (not worth a NaN or +Inf).
function maxFds(): number | null {
  const limits = readProc('/proc/self/limits');
  const match = limits && /^Max open files\s+(\d+)\s/m.exec(limits);
  return match ? Number(match[1]) : null;
}

/** Registers the process and runtime families on a registry and keeps them current. */
export class ProcessCollector {
  private readonly delay: IntervalHistogram;
  private readonly gcObserver: PerformanceObserver;
  private stopped = false;

  constructor(registry: Registry, options: ProcessCollectorOptions = {}) {
    const prefix = options.prefix ?? '';
    const counter = (name: string, help: string): Counter => registry.counter({ name: prefix + name, help });
    const gauge = (name: string, help: string): Gauge => registry.gauge({ name: prefix + name, help });

    const cpuUser = counter('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.');
    const cpuSystem = counter('process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.');
    const cpuTotal = counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.');
    const startTime = gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.');
    const resident = gauge('process_resident_memory_bytes', 'Resident memory size in bytes.');

    const hasStatus = readProc('/proc/self/status') !== null;
    const virtual = hasStatus ? gauge('process_virtual_memory_bytes', 'Virtual memory size in bytes.') : null;
    const heap = hasStatus ? gauge('process_heap_bytes', 'Process heap size in bytes.') : null;
    const openFds = countFds() !== null ? gauge('process_open_fds', 'Number of open file descriptors.') : null;
    const maxFdsValue = maxFds();
    const maxFdsGauge = maxFdsValue !== null ? gauge('process_max_fds', 'Maximum number of open file descriptors.') : null;

    const lag = gauge('nodejs_eventloop_lag_seconds', 'Lag of event loop in seconds.');
    const lagMin = gauge('nodejs_eventloop_lag_min_seconds', 'The minimum recorded event loop delay.');
    const lagMax = gauge('nodejs_eventloop_lag_max_seconds', 'The maximum recorded event loop delay.');
    const lagMean = gauge('nodejs_eventloop_lag_mean_seconds', 'The mean of the recorded event loop delays.');
    const lagStddev = gauge('nodejs_eventloop_lag_stddev_seconds', 'The standard deviation of the recorded event loop delays.');
    const lagP50 = gauge('nodejs_eventloop_lag_p50_seconds', 'The 50th percentile of the recorded event loop delays.');
    const lagP90 = gauge('nodejs_eventloop_lag_p90_seconds', 'The 90th percentile of the recorded event loop delays.');
    const lagP99 = gauge('nodejs_eventloop_lag_p99_seconds', 'The 99th percentile of the recorded event loop delays.');

    // Gauges despite the `_total` suffix that promtool lints: existing dashboards query these names.
    const internals = process as unknown as ProcessInternals;
    const getHandles = internals._getActiveHandles;
    const getRequests = internals._getActiveRequests;
    const handles = getHandles ? gauge('nodejs_active_handles_total', 'Total number of active handles.') : null;
    const requests = getRequests ? gauge('nodejs_active_requests_total', 'Total number of active requests.') : null;

    const heapTotal = gauge('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.');
    const heapUsed = gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.');
    const external = gauge('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.');
    const spaceGauge = (kind: string): Gauge =>
      registry.gauge({
        name: `${prefix}nodejs_heap_space_size_${kind}_bytes`,
        help: `Process heap space size ${kind} from Node.js in bytes.`,
        labelNames: ['space'],
      });
    const spaceTotal = spaceGauge('total');
    const spaceUsed = spaceGauge('used');
    const spaceAvailable = spaceGauge('available');

    const version = registry.gauge({
      name: `${prefix}nodejs_version_info`,
      help: 'Node.js version info.',
      labelNames: ['version', 'major', 'minor', 'patch'],
    });
    const gc = registry.histogram({
      name: `${prefix}nodejs_gc_duration_seconds`,
      help: 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
      labelNames: ['kind'],
      buckets: GC_DURATION_BUCKETS,
    });

    // Every label-less family's only series, at slot 0, exists from the first scrape on.
    for (const g of [cpuUser, cpuSystem, cpuTotal, startTime, resident, virtual, heap, openFds, maxFdsGauge]) g?.series([]);
    for (const g of [lag, lagMin, lagMax, lagMean, lagStddev, lagP50, lagP90, lagP99]) g.series([]);
    for (const g of [handles, requests, heapTotal, heapUsed, external]) g?.series([]);
    startTime.set(ONLY, performance.timeOrigin / 1000);
    if (maxFdsGauge && maxFdsValue !== null) maxFdsGauge.set(ONLY, maxFdsValue);
    const [major, minor, patch] = process.versions.node.split('.');
    version.set(version.series([process.version, major, minor, patch]), 1);

    const gcSlots = new Map<number, number>();
    for (const [kind, label] of GC_KINDS) gcSlots.set(kind, gc.series([label]));
    this.gcObserver = new PerformanceObserver((list) => {
      // Every entry of the batch: one batch can hold many collections.
      for (const entry of list.getEntries()) {
        const slot = gcSlots.get((entry as GcEntry).detail?.kind ?? -1);
        if (slot !== undefined) gc.observe(slot, entry.duration / 1000);
      }
    });
    this.gcObserver.observe({ entryTypes: ['gc'] });

    this.delay = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
    this.delay.enable();

    registry.onCollect(() => {
      // Totals since process start, set rather than added so no baseline can be missed.
      const cpu = process.cpuUsage();
      cpuUser.set(ONLY, cpu.user / 1e6);
      cpuSystem.set(ONLY, cpu.system / 1e6);
      cpuTotal.set(ONLY, (cpu.user + cpu.system) / 1e6);

      const memory = process.memoryUsage();
      const status = hasStatus ? readProc('/proc/self/status') : null;
      const rss = status !== null ? statusBytes(status, VM_RSS) : null;
      resident.set(ONLY, rss ?? memory.rss);
      if (status !== null) {
        const size = statusBytes(status, VM_SIZE);
        const data = statusBytes(status, VM_DATA);
        if (virtual && size !== null) virtual.set(ONLY, size);
        if (heap && data !== null) heap.set(ONLY, data);
      }
      const fds = openFds ? countFds() : null;
      if (openFds && fds !== null) openFds.set(ONLY, fds);

      this.collectEventLoop(lag, [lagMin, lagMax, lagMean, lagStddev, lagP50, lagP90, lagP99]);

      if (handles && getHandles) handles.set(ONLY, getHandles.call(process).length);
      if (requests && getRequests) requests.set(ONLY, getRequests.call(process).length);

      heapTotal.set(ONLY, memory.heapTotal);
      heapUsed.set(ONLY, memory.heapUsed);
      external.set(ONLY, memory.external);
      for (const space of v8.getHeapSpaceStatistics()) {
        const name = space.space_name.endsWith('_space') ? space.space_name.slice(0, -6) : space.space_name;
        spaceTotal.set(spaceTotal.series([name]), space.space_size);
        spaceUsed.set(spaceUsed.series([name]), space.space_used_size);
        spaceAvailable.set(spaceAvailable.series([name]), space.space_available_size);
      }
    });
  }

  /** Disconnects the GC observer and the event-loop monitor so the process can exit. */
  stop(): void {
    this.stopped = true;
    this.gcObserver.disconnect();
    this.delay.disable();
  }

  // `lag` is how late a setImmediate scheduled now runs; like prom-client's, the value is
  // measured after this scrape and shown by the next one. The delay statistics cover the
  // time since the previous scrape; when the monitor saw no sample they keep their last
  // values, because its empty-histogram readings are garbage (min 9223372036.85, NaN mean).
  private collectEventLoop(lag: Gauge, stats: Gauge[]): void {
    if (this.stopped) return;
    const start = process.hrtime.bigint();
    setImmediate(() => lag.set(ONLY, Number(process.hrtime.bigint() - start) / 1e9));
    const h = this.delay;
    if (h.count > 0) {
      const readings = [h.min, h.max, h.mean, h.stddev, h.percentile(50), h.percentile(90), h.percentile(99)];
      for (let i = 0; i < stats.length; i++) stats[i].set(ONLY, readings[i] / 1e9);
    }
    h.reset();
  }
}
