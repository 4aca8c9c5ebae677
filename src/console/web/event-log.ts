import type { LogRow } from './wire.js';

/** Rows kept in the page; older ones are dropped, so a long session stays light. */
const HISTORY = 500;

/**
 * The event log: a bounded history, filtered by channel and type when shown, and a pause that
 * keeps rows arriving meanwhile (within the same bound) for when it resumes.
 */
export class EventLog {
  private rows: LogRow[] = [];
  private held: LogRow[] = [];
  private paused = false;
  private dropped = 0;
  private channelFilter = '';
  private typeFilter = '';

  constructor(
    private readonly list: HTMLOListElement,
    private readonly note: HTMLElement,
  ) {}

  add(rows: LogRow[], dropped: number): void {
    this.dropped += dropped;
    if (this.paused) {
      this.held.push(...rows);
      if (this.held.length > HISTORY) this.held.splice(0, this.held.length - HISTORY);
      this.showNote();
      return;
    }
    this.append(rows);
    this.showNote();
  }

  filter(channel: string, type: string): void {
    this.channelFilter = channel.trim();
    this.typeFilter = type;
    this.render();
  }

  /** Pauses or resumes; returns whether it is paused now. */
  togglePause(): boolean {
    this.paused = !this.paused;
    if (!this.paused) {
      const held = this.held;
      this.held = [];
      this.append(held);
    }
    this.showNote();
    return this.paused;
  }

  clear(): void {
    this.rows = [];
    this.held = [];
    this.dropped = 0;
    this.render();
    this.showNote();
  }

  private append(rows: LogRow[]): void {
    this.rows.push(...rows);
    const over = this.rows.length - HISTORY;
    if (over > 0) this.rows.splice(0, over);
    // Newest first: new rows go on top; the list keeps at most HISTORY items.
    const fragment = document.createDocumentFragment();
    for (let i = rows.length - 1; i >= 0; i--) if (this.matches(rows[i])) fragment.appendChild(item(rows[i]));
    this.list.prepend(fragment);
    while (this.list.children.length > HISTORY) this.list.lastElementChild!.remove();
  }

  private render(): void {
    const fragment = document.createDocumentFragment();
    for (let i = this.rows.length - 1; i >= 0; i--) if (this.matches(this.rows[i])) fragment.appendChild(item(this.rows[i]));
    this.list.replaceChildren(fragment);
  }

  private matches(row: LogRow): boolean {
    if (this.typeFilter !== '' && row.type !== this.typeFilter) return false;
    return this.channelFilter === '' || (row.channel ?? '').includes(this.channelFilter);
  }

  private showNote(): void {
    const parts: string[] = [];
    if (this.paused) parts.push(`paused, ${this.held.length} new`);
    if (this.dropped > 0) parts.push(`${this.dropped} rows skipped by the server (too many at once)`);
    this.note.textContent = parts.join(' · ');
  }
}

function item(row: LogRow): HTMLLIElement {
  const li = document.createElement('li');
  li.dataset.eventType = row.type;
  const time = document.createElement('span');
  time.className = 'time';
  time.textContent = new Date(row.t).toLocaleTimeString('en-GB');
  const type = document.createElement('span');
  type.className = 'type';
  type.textContent = row.type;
  const details = document.createElement('span');
  details.className = 'details';
  details.textContent = describe(row);
  li.append(time, type, details);
  return li;
}

// textContent only: event data and channel names come from clients and must never become markup.
function describe(row: LogRow): string {
  const parts: string[] = [];
  if (row.node !== undefined) parts.push(`[${row.node}]`);
  if (row.channel !== undefined) parts.push(`channel=${row.channel}`);
  if (row.event !== undefined) parts.push(`event=${row.event}`);
  if (row.socket !== undefined) parts.push(`socket=${row.socket}`);
  if (row.user !== undefined) parts.push(`user=${row.user}`);
  if (row.code !== undefined) parts.push(`code=${row.code}`);
  if (row.detail !== undefined) parts.push(row.detail);
  if (row.data !== undefined) parts.push(`data=${row.data}`);
  return parts.join(' ');
}
