// The set of families one endpoint exposes, and the writer that renders them.
import { Counter } from './counter';
import { Family, FamilyOptions } from './family';
import { Gauge } from './gauge';
import { Histogram, HistogramOptions } from './histogram';

/** Families in registration order, rendered together as one scrape body. */
export class Registry {
  private readonly families: Family[] = [];
  private readonly sampleNames = new Set<string>();
  private readonly hooks: Array<() => void> = [];

  /**
   * Adds a family. Refuses a name already taken, including a histogram's `_bucket`,
   * `_sum` and `_count` names, since two families printing the same sample name would
   * merge into nonsense on the Prometheus side.
   */
  register<F extends Family>(family: F): F {
    for (const name of family.sampleNames) {
      if (this.sampleNames.has(name)) throw new Error(`metric ${name} is already registered`);
    }
    for (const name of family.sampleNames) this.sampleNames.add(name);
    this.families.push(family);
    return family;
  }

  /** Creates and registers a counter. */
  counter(options: FamilyOptions): Counter {
    return this.register(new Counter(options));
  }

  /** Creates and registers a gauge. */
  gauge(options: FamilyOptions): Gauge {
    return this.register(new Gauge(options));
  }

  /** Creates and registers a histogram. */
  histogram(options: HistogramOptions): Histogram {
    return this.register(new Histogram(options));
  }

  /** Runs `hook` at the start of every render, to refresh values read from elsewhere. */
  onCollect(hook: () => void): void {
    this.hooks.push(hook);
  }

  /**
   * The scrape body in text format 0.0.4. A family without series (or whose series were all removed) prints nothing, not
   * even HELP and TYPE: a parser drops such a family anyway, and an empty family would
   * only be noise in every scrape until its first series appears.
   */
  render(): string {
    for (const hook of this.hooks) hook();
    let out = '';
    for (const family of this.families) {
      if (family.live) out = family.write(out + family.header);
    }
    return out;
  }
}
