// A counter: one float per series that only goes up.
import { Family, FamilyOptions } from './family';
import { samplePrefix } from './format';

/** A monotonically increasing total, e.g. bytes sent. */
export class Counter extends Family {
  constructor(options: FamilyOptions) {
    super('counter', options, 1, ['']);
  }

  /**
   * Adds `n` (≥ 0, not checked: this runs once per frame and must stay a single store)
   * to the series at `slot`.
   */
  add(slot: number, n: number): void {
    this.values[slot] += n;
  }

  /** Mirrors a total kept elsewhere (e.g. the kernel's CPU time); it must never go down. */
  set(slot: number, total: number): void {
    this.values[slot] = total;
  }

  /** Current value of the series at `slot`. */
  get(slot: number): number {
    return this.values[slot];
  }

  protected renderPrefixes(pairs: string): string[] {
    return [samplePrefix(this.name, pairs)];
  }
}
