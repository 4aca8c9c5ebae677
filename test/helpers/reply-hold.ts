// A TCP proxy in front of a real Redis that can hold back the replies to one node's commands,
// to make a race between nodes deterministic: the node's commands reach Redis and run at once,
// but the node learns their results only when the test releases them. Pub/sub connections (any
// that sent SSUBSCRIBE) are never held, so the node keeps receiving the other nodes' frames.
import * as net from 'node:net';

export interface ReplyHold {
  port: number;
  /** redis://127.0.0.1:PORT, for the held node's REDIS_URL. */
  url: string;
  /** From now on, replies on command connections wait until release(). */
  hold(): void;
  /** Writes the held replies, in order, and stops holding. */
  release(): void;
  close(): Promise<void>;
}

interface Link {
  client: net.Socket;
  upstream: net.Socket;
  subscriber: boolean;
  held: Buffer[];
}

/** Listens on a free loopback port and forwards each connection to 127.0.0.1:redisPort. */
export async function replyHold(redisPort: number): Promise<ReplyHold> {
  const links = new Set<Link>();
  let holding = false;
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: redisPort });
    const link: Link = { client, upstream, subscriber: false, held: [] };
    links.add(link);
    client.on('data', (d: Buffer) => {
      if (!link.subscriber && /ssubscribe/i.test(d.toString('latin1'))) link.subscriber = true;
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (holding && !link.subscriber) link.held.push(d);
      else client.write(d);
    });
    const end = () => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      for (const link of links) for (const d of link.held.splice(0)) link.client.write(d);
    },
    close: async () => {
      for (const link of links) {
        link.client.destroy();
        link.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
