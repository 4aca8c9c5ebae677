// A gauge: one float per series that goes up and down.
import { Family, FamilyOptions } from './family';
import { samplePrefix } from './format';

/** A value that can go up and down, e.g. open connections. */
export class Gauge extends Family {
  constructor(options: FamilyOptions) {
    super('gauge', options, 1, ['']);
  }

  /** Sets the series at `slot` to `v`. */
  set(slot: number, v: number): void {
    this.values[slot] = v;
  }

  /** Adds `v` (negative to decrease) to the series at `slot`. */
  add(slot: number, v: number): void {
    this.values[slot] += v;
  }

  /** Current value of the series at `slot`. */
  get(slot: number): number {
    return this.values[slot];
  }

  protected renderPrefixes(pairs: string): string[] {
    return [samplePrefix(this.name, pairs)];
  }
}
