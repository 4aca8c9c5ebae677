// The metrics engine's public surface.
export { Counter } from './counter';
export { Family, FamilyOptions } from './family';
export { CONTENT_TYPE } from './format';
export { Gauge } from './gauge';
export { Histogram, HistogramOptions } from './histogram';
export { ProcessCollector, ProcessCollectorOptions } from './process-collector';
export { PwsMetrics, PwsMetricsOptions } from './pws-metrics';
export { Registry } from './registry';
