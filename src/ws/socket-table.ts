import { socketId, type Socket } from './socket';

/**
 * One app's open sockets, by slot. A socket id is `<nonce>.<slot>`, so finding the socket an API
 * call excludes is an array index plus a nonce check, and a connection costs one array element
 * instead of an id string and a Map entry (idle memory per connection is a product figure).
 */
export class SocketTable {
  private readonly slots: (Socket | undefined)[] = [];
  private readonly free: number[] = [];
  /** Open sockets. */
  size = 0;

  /** Stores an opened socket and returns its slot. */
  add(ws: Socket): number {
    const slot = this.free.length > 0 ? this.free.pop()! : this.slots.length;
    this.slots[slot] = ws;
    this.size++;
    return slot;
  }

  remove(slot: number): void {
    this.slots[slot] = undefined;
    this.free.push(slot);
    this.size--;
  }

  /** The open socket with this id, if any. */
  get(socketId: string): Socket | undefined {
    const dot = socketId.indexOf('.');
    const slot = Number(socketId.slice(dot + 1));
    const ws = Number.isSafeInteger(slot) ? this.slots[slot] : undefined;
    return ws !== undefined && ws.getUserData().nonce === Number(socketId.slice(0, dot)) ? ws : undefined;
  }

  /**
   * Calls `visit` with each open socket, in slot order. Allocates nothing, unlike a generator's
   * result object per socket: the activity sweep visits every socket every second. A socket
   * removed meanwhile, such as one `visit` closes, is skipped if not reached yet.
   */
  forEach(visit: (ws: Socket) => void): void {
    const slots = this.slots;
    for (let slot = 0; slot < slots.length; slot++) {
      const ws = slots[slot];
      if (ws !== undefined) visit(ws);
    }
  }

  /** Ids of the open sockets, in slot order. */
  ids(): string[] {
    const ids: string[] = [];
    this.forEach((ws) => ids.push(socketId(ws)));
    return ids;
  }
}
