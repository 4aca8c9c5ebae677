// Liveness: a socket silent for ACTIVITY_TIMEOUT seconds gets pusher:ping; answering keeps it
// open, not answering within PONG_TIMEOUT closes it with 4201. Any frame from the client counts as
// activity, and pusher-js (which answers pings and pings on its own) stays connected.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type PusherJs from 'pusher-js';
import { connected, nextEvent, startServer, subscribed } from '../helpers/server';

const FAST = { ACTIVITY_TIMEOUT: '1', PONG_TIMEOUT: '300' };
const PING = '{"event":"pusher:ping","data":{}}';

describe('server pings', () => {
  test('a silent socket gets pusher:ping; answering pusher:pong keeps it open across several timeouts', async () => {
    const s = await startServer(FAST);
    try {
      const r = await s.raw();
      assert.equal(JSON.parse((await r.next((f) => f.event === 'pusher:connection_established')).data).activity_timeout, 1);
      for (let round = 0; round < 3; round++) {
        const from = r.texts.length;
        await r.next((f) => f.event === 'pusher:ping', from);
        assert.deepEqual(r.texts.slice(from), [PING]);
        r.send({ event: 'pusher:pong', data: {} });
      }
      await r.request({ event: 'pusher:ping', data: {} }, (f) => f.event === 'pusher:pong');
      assert.equal(r.ws.readyState, r.ws.OPEN);
      assert.equal(r.frames.some((f) => f.event === 'pusher:error'), false);
    } finally {
      await s.stop();
    }
  });

  test('not answering the ping gets pusher:error 4201 and close 4201; other sockets stay', async () => {
    const s = await startServer(FAST);
    try {
      const lively = await s.raw();
      await lively.socketId();
      const silent = await s.raw();
      await silent.socketId();
      await lively.next((f) => f.event === 'pusher:ping');
      lively.send({ event: 'pusher:pong', data: {} });

      assert.deepEqual(await silent.closed, { code: 4201, reason: 'Pong reply not received in time' });
      assert.deepEqual(silent.texts.slice(1), [PING, '{"event":"pusher:error","data":{"code":4201,"message":"Pong reply not received in time"}}']);
      await lively.request({ event: 'pusher:ping', data: {} }, (f) => f.event === 'pusher:pong');
    } finally {
      await s.stop();
    }
  });

  test('any frame counts as activity: a socket that keeps talking is never pinged', async () => {
    const s = await startServer(FAST);
    try {
      const chatty = await s.raw();
      await chatty.socketId();
      const silent = await s.raw();
      await silent.socketId();
      // Talk every 250 ms, well inside the 1 s activity timeout, until the silent socket has been pinged twice.
      const talk = setInterval(() => chatty.send({ event: 'pusher:subscribe', data: { channel: 'news' } }), 250);
      try {
        await silent.next((f) => f.event === 'pusher:ping');
        const from = silent.frames.length;
        silent.send({ event: 'pusher:pong', data: {} });
        await silent.next((f) => f.event === 'pusher:ping', from);
      } finally {
        clearInterval(talk);
      }
      assert.equal(chatty.frames.some((f) => f.event === 'pusher:ping'), false);
    } finally {
      await s.stop();
    }
  });
});

describe('pusher-js', () => {
  /** Watches a connected pusher-js client for three activity timeouts; returns its state changes and the pings/pongs it saw. */
  async function watch(client: PusherJs): Promise<{ states: string[]; traffic: string[] }> {
    const states: string[] = [];
    const traffic: string[] = [];
    client.connection.bind('state_change', ({ current }: { current: string }) => states.push(current));
    client.connection.bind('message', (m: { event: string }) => {
      if (m.event === 'pusher:ping' || m.event === 'pusher:pong') traffic.push(m.event);
    });
    await new Promise((resolve) => setTimeout(resolve, 3500));
    return { states, traffic };
  }

  test('stays connected with one socket id over several activity timeouts and still receives events', async () => {
    const s = await startServer(FAST);
    try {
      const client = s.client();
      const socketId = await connected(client);
      await subscribed(client, 'news');
      const { states, traffic } = await watch(client);
      assert.deepEqual(states, []);
      assert.equal(client.connection.socket_id, socketId);
      assert.ok(traffic.length >= 2, `expected ping traffic, got ${JSON.stringify(traffic)}`);

      const got = nextEvent(client, 'news', 'tick');
      await s.sdk().trigger('news', 'tick', { n: 1 });
      assert.deepEqual(await got, { n: 1 });
    } finally {
      await s.stop();
    }
  });

  test('answers the server\'s pings in time when it does not ping on its own', async () => {
    const s = await startServer(FAST);
    try {
      const client = s.client();
      const socketId = await connected(client);
      // pusher-js's own ping delay, re-armed on every message it receives (next: subscription_succeeded).
      // Pushed out, only its pong answers keep the server from closing it with 4201.
      (client.connection as any).activityTimeout = 60_000;
      await subscribed(client, 'news');
      const { states, traffic } = await watch(client);
      assert.deepEqual(states, []);
      assert.equal(client.connection.socket_id, socketId);
      assert.ok(traffic.filter((e) => e === 'pusher:ping').length >= 2, `expected server pings, got ${JSON.stringify(traffic)}`);
      assert.equal(traffic.includes('pusher:pong'), false, 'pusher-js sent no pings of its own');
    } finally {
      await s.stop();
    }
  });
});
