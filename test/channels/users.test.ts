// User sign-in (`pusher:signin`, signed `HMAC(secret, "socket_id::user::user_data")`), events sent
// to a user (`sendToUser`, delivered on every socket of that user and no other), terminating a
// user's connections (4009), and apps that require sign-in within USER_AUTHENTICATION_TIMEOUT.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import type PusherJs from 'pusher-js';
import { APP, connected, drained, eventually, type RawSocket, startServer, type TestServer } from '../helpers/server';


/** A connected pusher-js client signed in as `user`, with every frame and connection error it got. */
async function signedIn(s: TestServer, user: { id: string; [k: string]: unknown }): Promise<{ client: PusherJs; frames: any[]; errors: any[] }> {
  const client = s.client({ user });
  const frames: any[] = [];
  const errors: any[] = [];
  client.connection.bind('message', (m: unknown) => frames.push(m));
  client.connection.bind('error', (e: unknown) => errors.push(e));
  await connected(client);
  client.signin();
  await eventually(() => client.user.user_data !== null, 5000, `sign-in of ${user.id}`);
  return { client, frames, errors };
}

/** Signs a raw socket in as `user` with the SDK and returns the server's answer. */
async function signInRaw(s: TestServer, r: RawSocket, user: { id: string; [k: string]: unknown }): Promise<any> {
  const signed = s.sdk().authenticateUser(await r.socketId(), user);
  return r.request({ event: 'pusher:signin', data: signed }, (f) => f.event === 'pusher:signin_success' || f.event === 'pusher:error');
}

/**
 * The faye-websocket inside pusher-js, asked by pusher-js to close a socket the server has already
 * closed, arms a 30 s close timer it never clears, which would hold the test process open that long.
 * Returns a function that clears it; the socket is closed, so the timer has nothing left to do.
 */
function staleCloseTimer(client: PusherJs): () => void {
  const socket = (client.connection as any).connection.transport.socket;
  return () => clearTimeout(socket._closeTimer);
}

async function answersPing(r: RawSocket): Promise<void> {
  await r.request({ event: 'pusher:ping', data: {} }, (f) => f.event === 'pusher:pong');
}

describe('sign-in', () => {
  test('pusher-js signin() gets signin_success, user_data set, and its #server-to-user channel confirmed', async () => {
    const s = await startServer();
    try {
      const { client, frames, errors } = await signedIn(s, { id: 'u1', name: 'Ann' });
      assert.deepEqual(client.user.user_data, { id: 'u1', name: 'Ann' });
      await eventually(() => frames.some((f) => f.event === 'pusher_internal:subscription_succeeded'), 5000, 'the user channel confirmation');
      assert.deepEqual(
        frames.map((f) => [f.event, f.channel]),
        [
          ['pusher:signin_success', undefined],
          ['pusher_internal:subscription_succeeded', '#server-to-user-u1'],
        ],
      );
      assert.deepEqual(errors, []);
      assert.deepEqual([...s.server.apps.findById(APP.id)!.users.keys()], ['u1']);
    } finally {
      await s.stop();
    }
  });

  test('signin_success echoes the signed user_data string exactly', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      await signInRaw(s, r, { id: 'u1', tags: ['a', 'b'] });
      assert.equal(r.texts[1], '{"event":"pusher:signin_success","data":{"user_data":"{\\"id\\":\\"u1\\",\\"tags\\":[\\"a\\",\\"b\\"]}"}}');
    } finally {
      await s.stop();
    }
  });

  test('a bad signature gets pusher:error 4009, then close 4009', async () => {
    const s = await startServer();
    try {
      const bystander = await s.raw();
      await bystander.socketId();
      const r = await s.raw();
      const id = await r.socketId();
      const userData = '{"id":"u1"}';
      r.send({ event: 'pusher:signin', data: { user_data: userData, auth: `${APP.key}:${createHmac('sha256', 'wrong-secret').update(`${id}::user::${userData}`).digest('hex')}` } });
      assert.deepEqual(await r.closed, { code: 4009, reason: 'Invalid signature for pusher:signin' });
      assert.deepEqual(r.texts.slice(1), ['{"event":"pusher:error","data":{"code":4009,"message":"Invalid signature for pusher:signin"}}']);
      await answersPing(bystander);
      assert.equal(s.server.apps.findById(APP.id)!.users.size, 0);
    } finally {
      await s.stop();
    }
  });

  test('a signature made for another socket, or user_data without an id, is refused with 4009', async () => {
    const s = await startServer();
    try {
      const other = await s.raw();
      const stolen = s.sdk().authenticateUser(await other.socketId(), { id: 'u1' });
      const thief = await s.raw();
      await thief.socketId();
      thief.send({ event: 'pusher:signin', data: stolen });
      assert.deepEqual(await thief.closed, { code: 4009, reason: 'Invalid signature for pusher:signin' });

      const anonymous = await s.raw();
      const id = await anonymous.socketId();
      const userData = '{"name":"nobody"}';
      anonymous.send({ event: 'pusher:signin', data: { user_data: userData, auth: `${APP.key}:${createHmac('sha256', APP.secret).update(`${id}::user::${userData}`).digest('hex')}` } });
      assert.deepEqual(await anonymous.closed, { code: 4009, reason: 'pusher:signin user_data must have a non-empty string id' });
      assert.deepEqual(anonymous.frames.slice(1), [{ event: 'pusher:error', data: { code: 4009, message: 'pusher:signin user_data must have a non-empty string id' } }]);
      await answersPing(other);
    } finally {
      await s.stop();
    }
  });

  test('only a socket signed in as that user may subscribe to #server-to-user-<id>', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      const subscribe = (channel: string) =>
        r.request({ event: 'pusher:subscribe', data: { channel, auth: '' } }, (f) => f.channel === channel && f.event !== 'pusher:error');
      assert.deepEqual(await subscribe('#server-to-user-u1'), {
        event: 'pusher:subscription_error',
        channel: '#server-to-user-u1',
        data: { type: 'AuthError', error: 'Only a socket signed in as that user may subscribe to #server-to-user-u1', status: 403 },
      });
      await signInRaw(s, r, { id: 'u1' });
      assert.deepEqual(await subscribe('#server-to-user-u1'), { event: 'pusher_internal:subscription_succeeded', channel: '#server-to-user-u1', data: '{}' });
      assert.equal((await subscribe('#server-to-user-u2')).event, 'pusher:subscription_error');
    } finally {
      await s.stop();
    }
  });
});

describe('sendToUser', () => {
  test('reaches every pusher-js socket of the user and no other', async () => {
    const s = await startServer();
    try {
      const phone = await signedIn(s, { id: 'u1' });
      const laptop = await signedIn(s, { id: 'u1' });
      const stranger = await signedIn(s, { id: 'u2' });
      const got: Record<string, unknown[]> = { phone: [], laptop: [], stranger: [] };
      phone.client.user.bind('notice', (d: unknown) => got.phone.push(d));
      laptop.client.user.bind('notice', (d: unknown) => got.laptop.push(d));
      stranger.client.user.bind('notice', (d: unknown) => got.stranger.push(d));

      await s.sdk().sendToUser('u1', 'notice', { text: 'hi' });
      await eventually(() => got.phone.length === 1 && got.laptop.length === 1, 5000, 'both sockets of u1');
      await drained(stranger.client);
      assert.deepEqual(got, { phone: [{ text: 'hi' }], laptop: [{ text: 'hi' }], stranger: [] });
    } finally {
      await s.stop();
    }
  });

  test('the frame on the wire is an event on #server-to-user-<id>', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      await signInRaw(s, r, { id: 'u1' });
      const from = r.texts.length;
      await s.sdk().sendToUser('u1', 'notice', { text: 'hi' });
      await r.next((f) => f.event === 'notice', from);
      assert.deepEqual(r.texts.slice(from), ['{"event":"notice","channel":"#server-to-user-u1","data":"{\\"text\\":\\"hi\\"}"}']);
    } finally {
      await s.stop();
    }
  });

  test('signing in again as another user moves the socket: the old user\'s events stop', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      await signInRaw(s, r, { id: 'u1' });
      await signInRaw(s, r, { id: 'u2' });
      const users = s.server.apps.findById(APP.id)!.users;
      assert.deepEqual([...users.keys()], ['u2']);
      await s.sdk().sendToUser('u1', 'for-u1', {});
      await s.sdk().sendToUser('u2', 'for-u2', {});
      await r.next((f) => f.event === 'for-u2');
      await answersPing(r);
      assert.equal(r.frames.some((f) => f.event === 'for-u1'), false);
    } finally {
      await s.stop();
    }
  });
});

describe('terminateUserConnections', () => {
  test('closes exactly that user\'s raw sockets with pusher:error 4009 then close 4009', async () => {
    const s = await startServer();
    try {
      const a1 = await s.raw();
      const a2 = await s.raw();
      const b = await s.raw();
      const anonymous = await s.raw();
      await anonymous.socketId();
      await signInRaw(s, a1, { id: 'u1' });
      await signInRaw(s, a2, { id: 'u1' });
      await signInRaw(s, b, { id: 'u2' });

      await s.sdk().terminateUserConnections('u1');
      for (const r of [a1, a2]) {
        assert.deepEqual(await r.closed, { code: 4009, reason: 'You got disconnected by the app.' });
        assert.deepEqual(r.texts.slice(2), ['{"event":"pusher:error","data":{"code":4009,"message":"You got disconnected by the app."}}']);
      }
      await answersPing(b);
      await answersPing(anonymous);
      const app = s.server.apps.findById(APP.id)!;
      await eventually(() => app.sockets.size === 2, 2000, 'the closed sockets to be dropped');
      assert.deepEqual([...app.users.keys()], ['u2']);
    } finally {
      await s.stop();
    }
  });

  test('pusher-js of that user stops, another user\'s stays connected', async () => {
    const s = await startServer();
    try {
      const target = await signedIn(s, { id: 'u1' });
      const other = await signedIn(s, { id: 'u2' });
      const clearCloseTimer = staleCloseTimer(target.client);
      await s.sdk().terminateUserConnections('u1');
      await eventually(() => ['failed', 'disconnected'].includes(target.client.connection.state), 5000, 'pusher-js of u1 to stop');
      clearCloseTimer();
      assert.deepEqual(target.errors[0], { type: 'PusherError', data: { code: 4009, message: 'You got disconnected by the app.' } });
      await drained(other.client);
      assert.equal(other.client.connection.state, 'connected');
    } finally {
      await s.stop();
    }
  });

  test('an unknown user is a no-op', async () => {
    const s = await startServer();
    try {
      const r = await s.raw();
      await signInRaw(s, r, { id: 'u1' });
      await s.sdk().terminateUserConnections('nobody');
      await answersPing(r);
    } finally {
      await s.stop();
    }
  });
});

describe('DEFAULT_APP_USER_AUTHENTICATION=1', () => {
  test('a socket that does not sign in within USER_AUTHENTICATION_TIMEOUT is closed with 4009; one that signs in stays', async () => {
    const s = await startServer({ DEFAULT_APP_USER_AUTHENTICATION: '1', USER_AUTHENTICATION_TIMEOUT: '300' });
    try {
      const signer = await s.raw();
      assert.equal((await signInRaw(s, signer, { id: 'u1' })).event, 'pusher:signin_success');
      const pjs = await signedIn(s, { id: 'u2' });
      const silent = await s.raw();
      await silent.socketId();

      assert.deepEqual(await silent.closed, { code: 4009, reason: 'Connection not signed in in time' });
      assert.deepEqual(silent.frames.slice(1), [{ event: 'pusher:error', data: { code: 4009, message: 'Connection not signed in within the user authentication timeout' } }]);
      await answersPing(signer);
      await drained(pjs.client);
      assert.equal(pjs.client.connection.state, 'connected');
    } finally {
      await s.stop();
    }
  });
});
