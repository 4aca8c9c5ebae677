// A histogram with fixed buckets. Per series it stores one count per bucket (not
// cumulative, so observe() touches one cell) plus the count above the last bound and the
// sum; the writer accumulates the counts into Prometheus' cumulative `le` buckets.
import { Family, FamilyOptions } from './family';
import { formatValue, samplePrefix } from './format';

/** What a histogram is made from: a family plus its bucket upper bounds. */
export interface HistogramOptions extends FamilyOptions {
  /** Finite upper bounds in increasing order; `+Inf` is always added. */
  buckets: readonly number[];
}

/** A distribution of observed values, e.g. GC pause durations. */
export class Histogram extends Family {
  /** Bucket upper bounds, without `+Inf`. */
  readonly buckets: Float64Array;

  constructor(options: HistogramOptions) {
    const bounds = options.buckets;
    for (let i = 0; i < bounds.length; i++) {
      if (!Number.isFinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
        throw new Error(`${options.name}: buckets must be finite and strictly increasing`);
      }
    }
    // Stride: one count per bound, the count above the last bound, the sum.
    super('histogram', options, bounds.length + 2, ['', '_bucket', '_sum', '_count']);
    this.buckets = Float64Array.from(bounds);
  }

  /** Records one value in the series at `slot`; NaN lands in `+Inf` only, as in client_golang. */
  observe(slot: number, v: number): void {
    const bounds = this.buckets;
    const n = bounds.length;
    let i = 0;
    while (i < n && !(v <= bounds[i])) i++;
    const base = slot * (n + 2);
    this.values[base + i] += 1;
    this.values[base + n + 1] += v;
  }

  /** Number of observations of the series at `slot`. */
  count(slot: number): number {
    const n = this.buckets.length;
    let total = 0;
    for (let i = 0; i <= n; i++) total += this.values[slot * (n + 2) + i];
    return total;
  }

  /** Sum of the observations of the series at `slot`. */
  sum(slot: number): number {
    const n = this.buckets.length;
    return this.values[slot * (n + 2) + n + 1];
  }

  write(out: string): string {
    const prefixes = this.prefixes;
    const values = this.values;
    const n = this.buckets.length;
    // Per series: n + 1 bucket prefixes (the last is +Inf), then _sum, then _count.
    for (let s = 0; s < this.size; s++) {
      const p = s * (n + 3);
      if (prefixes[p] === '') continue;
      const v = s * (n + 2);
      let cumulative = 0;
      for (let i = 0; i <= n; i++) {
        cumulative += values[v + i];
        out += prefixes[p + i] + formatValue(cumulative) + '\n';
      }
      out += prefixes[p + n + 1] + formatValue(values[v + n + 1]) + '\n';
      out += prefixes[p + n + 2] + formatValue(cumulative) + '\n';
    }
    return out;
  }

  protected renderPrefixes(pairs: string): string[] {
    const sep = pairs ? ',' : '';
    const out: string[] = [];
    for (const bound of this.buckets) out.push(`${this.name}_bucket{${pairs}${sep}le="${formatValue(bound)}"} `);
    out.push(`${this.name}_bucket{${pairs}${sep}le="+Inf"} `);
    out.push(samplePrefix(`${this.name}_sum`, pairs));
    out.push(samplePrefix(`${this.name}_count`, pairs));
    return out;
  }
}
