// A real HTTP endpoint receiving webhooks, on a free loopback port: it records every request
// byte for byte and answers as the test says (a status, or no answer at all), and can be
// closed and opened again on the same port to play a receiver that is down for a while.
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { eventually } from './server';

/** One POST as it arrived, and the status it was answered with (null: left hanging). */
export interface Received {
  headers: http.IncomingHttpHeaders;
  /** The raw body, exactly as sent. */
  body: string;
  json: { time_ms: number; events: any[] };
  status: number | null;
}

/** What to do with a request: answer with a status, or hold it unanswered until release(). */
export type Answer = number | 'hang';

export class WebhookReceiver {
  readonly requests: Received[] = [];
  /** Decides the answer to each request; 200 unless the test changes it. */
  answer: (request: Received) => Answer = () => 200;
  private server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly hanging: { response: http.ServerResponse; request: Received }[] = [];

  private constructor(public port: number) {
    this.server = this.create();
  }

  /** Listens on a free loopback port (or `port`). */
  static async start(port = 0): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver(port);
    await receiver.listen();
    return receiver;
  }

  /** http://127.0.0.1:<port><path> */
  url(path = '/hook'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Every event of every request answered 2xx, in arrival order: what the backend accepted. */
  events(): any[] {
    // As docs/webhooks.md tells receivers: a POST whose X-Pusher-Webhook-Id was seen is a repeat
    // (at-least-once delivery: a node that dies between the answer and its acknowledgement).
    const seen = new Set<unknown>();
    return this.delivered()
      .filter((r) => {
        const id = r.headers['x-pusher-webhook-id'];
        if (id === undefined) return true;
        if (seen.has(id)) return false;
        seen.add(id);
        return true;
      })
      .flatMap((r) => r.json.events);
  }

  /** Requests answered 2xx. */
  delivered(): Received[] {
    return this.requests.filter((r) => r.status !== null && r.status >= 200 && r.status < 300);
  }

  /** Waits until `count` events were accepted (and no more arrive by then). */
  async waitForEvents(count: number, timeoutMs = 15000): Promise<any[]> {
    await eventually(() => this.events().length >= count, timeoutMs, `${count} webhook events (got ${JSON.stringify(this.events())})`);
    return this.events();
  }

  /** Answers every request held so far with `status`. */
  release(status = 200): void {
    for (const { response, request } of this.hanging.splice(0)) {
      request.status = status;
      response.writeHead(status).end();
    }
  }

  /** Requests held unanswered right now. */
  get hangingCount(): number {
    return this.hanging.length;
  }

  /** Stops listening and cuts every connection: the port refuses connections until open(). */
  async close(): Promise<void> {
    this.hanging.length = 0;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Listens again on the same port. */
  async open(): Promise<void> {
    this.server = this.create();
    await this.listen();
  }

  private create(): http.Server {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const received: Received = { headers: req.headers, body, json: JSON.parse(body), status: null };
        this.requests.push(received);
        const answer = this.answer(received);
        if (answer === 'hang') {
          this.hanging.push({ response: res, request: received });
          return;
        }
        received.status = answer;
        res.writeHead(answer).end();
      });
    });
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    return server;
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.port = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }
}
