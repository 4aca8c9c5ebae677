/**
 * One token bucket per socket, stored by socket slot in one array (tokens and time side by side),
 * so limiting a socket's client events adds no object and no field to any socket. Exists only
 * for apps with a client-event limit.
 */
export class SocketBuckets {
  private cells = new Float64Array(0);

  constructor(
    /** Client events per second per socket, and the burst a socket may send at once. */
    readonly rate: number,
  ) {}

  /** A new socket in `slot` starts with a full bucket. */
  reset(slot: number, now: number): void {
    if (2 * slot + 2 > this.cells.length) {
      const grown = new Float64Array(Math.max(64, 4 * (slot + 1)));
      grown.set(this.cells);
      this.cells = grown;
    }
    this.cells[2 * slot] = this.rate;
    this.cells[2 * slot + 1] = now;
  }

  /** Takes one token from the socket's bucket; false when it is empty. */
  take(slot: number, now: number): boolean {
    const cells = this.cells;
    const i = 2 * slot;
    const tokens = Math.min(this.rate, cells[i] + ((now - cells[i + 1]) * this.rate) / 1000);
    cells[i + 1] = now;
    if (tokens < 1) {
      cells[i] = tokens;
      return false;
    }
    cells[i] = tokens - 1;
    return true;
  }
}
