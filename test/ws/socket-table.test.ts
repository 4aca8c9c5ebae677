// SocketTable: slots are reused, and a socket id only finds the socket it was issued to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket, SocketData } from '../../src/ws/socket';
import { socketId } from '../../src/ws/socket';
import { SocketTable } from '../../src/ws/socket-table';

// The table only reads getUserData(); a plain holder of SocketData is a real input for it.
function socket(nonce: number): Socket {
  const data = { nonce, slot: -1 } as SocketData;
  return { getUserData: () => data } as unknown as Socket;
}

function open(table: SocketTable, ws: Socket): Socket {
  ws.getUserData().slot = table.add(ws);
  return ws;
}

test('ids are <nonce>.<slot>, found by get(), and a freed slot is reused under a new nonce', () => {
  const table = new SocketTable();
  const a = open(table, socket(111));
  const b = open(table, socket(222));
  assert.deepEqual([socketId(a), socketId(b)], ['111.0', '222.1']);
  assert.equal(table.get('111.0'), a);
  assert.equal(table.get('222.1'), b);
  assert.equal(table.size, 2);

  table.remove(a.getUserData().slot);
  assert.equal(table.get('111.0'), undefined);
  const c = open(table, socket(333));
  assert.equal(socketId(c), '333.0');
  // The old id names the reused slot, but its nonce no longer matches.
  assert.equal(table.get('111.0'), undefined);
  assert.equal(table.get('333.0'), c);
  assert.deepEqual([...table.ids()], ['333.0', '222.1']);
  assert.equal(table.size, 2);
});

test('ids naming no slot find nothing', () => {
  const table = new SocketTable();
  open(table, socket(7));
  for (const id of ['7.1', '7.99999999999999999999', '8.0', '7', '.0', '7.-1']) assert.equal(table.get(id), undefined, id);
});
