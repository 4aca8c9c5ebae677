// What every metric type shares: a name, a HELP text, label names, and series that are
// resolved once to slot indices into a Float64Array that doubles when it fills up.
import { checkLabelNames, checkMetricName, familyHeader, formatValue, labelPairs } from './format';

/** What a family is made from. */
export interface FamilyOptions {
  /** Full metric name, prefix included. */
  name: string;
  /** HELP text; escaped by the writer. */
  help: string;
  /** Label names, in the order `series()` takes their values; none for a label-less family. */
  labelNames?: readonly string[];
}

const INITIAL_CAPACITY = 16;

/** Base of Counter, Gauge and Histogram: series bookkeeping and the scalar writer. */
export abstract class Family {
  /** Metric name as registered and printed. */
  readonly name: string;
  /** `counter`, `gauge` or `histogram`, as printed on the TYPE line. */
  readonly type: string;
  /** Label names, in the order `series()` takes their values. */
  readonly labelNames: readonly string[];
  /** `# HELP …\n# TYPE …\n`, escaped once. */
  readonly header: string;
  /** Its name and every sample name it prints (a histogram adds three); the registry refuses clashes. */
  readonly sampleNames: readonly string[];
  /** `stride` numbers per series, series after series. Read it afresh: growth replaces it. */
  values: Float64Array;
  /** Number of series created so far; slots are 0 … size-1. */
  size = 0;
  /** Series removed so far: their slots stay allocated but print nothing. */
  removed = 0;

  private readonly stride: number;
  private readonly slots = new Map<string, number>();
  // `prefixesPerSeries` strings per series, each a rendered `name{labels} `.
  protected readonly prefixes: string[] = [];

  protected constructor(type: string, options: FamilyOptions, stride: number, sampleSuffixes: readonly string[]) {
    checkMetricName(options.name);
    this.labelNames = [...(options.labelNames ?? [])];
    checkLabelNames(options.name, this.labelNames);
    this.name = options.name;
    this.type = type;
    this.header = familyHeader(options.name, type, options.help);
    this.sampleNames = sampleSuffixes.map((suffix) => options.name + suffix);
    this.stride = stride;
    this.values = new Float64Array(INITIAL_CAPACITY * stride);
  }

  /**
   * Slot of the series with these label values (in `labelNames` order), created on the
   * first call: its sample prefixes are rendered here so a scrape only formats numbers.
   * A label-less family has one series, `series([])`, at slot 0.
   */
  series(labelValues: readonly string[]): number {
    if (labelValues.length !== this.labelNames.length) {
      throw new Error(`${this.name} takes ${this.labelNames.length} label values, got ${labelValues.length}`);
    }
    // One label is the common case (app_id); JSON keeps multi-label keys unambiguous.
    const key = labelValues.length === 1 ? labelValues[0] : JSON.stringify(labelValues);
    const known = this.slots.get(key);
    if (known !== undefined) return known;
    for (const value of labelValues) {
      if (typeof value !== 'string') throw new TypeError(`${this.name}: label values must be strings`);
    }
    const slot = this.allocate(this.renderPrefixes(labelPairs(this.labelNames, labelValues)));
    this.slots.set(key, slot);
    return slot;
  }

  /**
   * Leaves the slots before `slot` that have no series unused, as if their series had been
   * removed: a family created after some apps were removed keeps its slots in step with the
   * app slots of the families that saw them.
   */
  skipTo(slot: number): void {
    while (this.size < slot) {
      this.allocate(this.renderPrefixes('').map(() => ''));
      this.removed++;
    }
  }

  private allocate(prefixes: string[]): number {
    const slot = this.size;
    if ((slot + 1) * this.stride > this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.prefixes.push(...prefixes);
    this.size = slot + 1;
    return slot;
  }

  /**
   * Takes the series with these label values out of every scrape (an app that was removed).
   * Its slot is never handed out again: work still in flight for the removed series may add to
   * it, and must not land in another series. A later `series()` of the same labels starts a new
   * series from zero, as a restarted target's would. Returns false if there was no such series.
   */
  remove(labelValues: readonly string[]): boolean {
    const key = labelValues.length === 1 ? labelValues[0] : JSON.stringify(labelValues);
    const slot = this.slots.get(key);
    if (slot === undefined) return false;
    this.slots.delete(key);
    const perSeries = this.prefixes.length / this.size;
    for (let i = 0; i < perSeries; i++) this.prefixes[slot * perSeries + i] = '';
    this.values.fill(0, slot * this.stride, (slot + 1) * this.stride);
    this.removed++;
    return true;
  }

  /** True while at least one series prints. */
  get live(): boolean {
    return this.size > this.removed;
  }

  /** Appends this family's sample lines (not its header) to `out`. */
  write(out: string): string {
    const prefixes = this.prefixes;
    const values = this.values;
    for (let i = 0; i < this.size; i++) if (prefixes[i] !== '') out += prefixes[i] + formatValue(values[i]) + '\n';
    return out;
  }

  /** The sample prefixes of one new series, given its escaped `a="x",…` pairs. */
  protected abstract renderPrefixes(pairs: string): string[];
}
