// The floor pws-server is measured against: bare uWebSockets.js speaking just enough of Pusher
// protocol 7 for the benchmark's clients and REST calls. No signatures, no app lookup, no
// channel bookkeeping, no metrics: native topic publish and one JSON.stringify per event.
// Same uWS build and the same socket options as pws-server. Run: PORT=6002 node dist/bench/reference-server.js
import { uws, type HttpResponse } from '../src/uws';

interface ApiEvent {
  name: string;
  data: string;
  channel?: string;
  channels?: string[];
}

// Enough to be unique within one run; the protocol only needs a string of two numbers.
let nextSocket = 0;

function publishEvent(event: ApiEvent): void {
  for (const channel of event.channels ?? [event.channel!]) {
    app.publish(channel, JSON.stringify({ event: event.name, channel, data: event.data }));
  }
}

// Reads the body, parses it, publishes, and answers `{}` (400 on a body that does not parse).
function apiRoute(publishBody: (body: Record<string, unknown>) => void) {
  return (res: HttpResponse): void => {
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const chunks: Buffer[] = [];
    res.onData((chunk, isLast) => {
      chunks.push(Buffer.from(chunk.slice(0)));
      if (!isLast) return;
      let status = '200 OK';
      try {
        publishBody(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        status = '400 Bad Request';
      }
      if (aborted) return;
      res.cork(() => {
        res.writeStatus(status).writeHeader('Content-Type', 'application/json').end('{}');
      });
    });
  };
}

const app = uws.App();

app.ws('/app/:key', {
  maxPayloadLength: 100 * 1024,
  idleTimeout: 0,
  maxBackpressure: 1024 * 1024,
  closeOnBackpressureLimit: false,
  open(ws) {
    const data = JSON.stringify({ socket_id: `${process.pid}.${++nextSocket}`, activity_timeout: 120 });
    ws.send(`{"event":"pusher:connection_established","data":${JSON.stringify(data)}}`);
  },
  message(ws, message) {
    const frame = JSON.parse(Buffer.from(message).toString('utf8')) as { event: string; data: { channel?: string } | string };
    if (frame.event === 'pusher:subscribe') {
      const data = typeof frame.data === 'string' ? (JSON.parse(frame.data) as { channel: string }) : frame.data;
      const channel = String(data.channel);
      ws.subscribe(channel);
      ws.send(JSON.stringify({ event: 'pusher_internal:subscription_succeeded', channel, data: '{}' }));
    } else if (frame.event === 'pusher:ping') {
      ws.send('{"event":"pusher:pong","data":{}}');
    }
  },
});

app.post('/apps/:id/events', apiRoute((body) => publishEvent(body as unknown as ApiEvent)));
app.post('/apps/:id/batch_events', apiRoute((body) => {
  for (const event of body.batch as ApiEvent[]) publishEvent(event);
}));

const port = Number(process.env.PORT ?? 6002);
app.listen(process.env.HOST ?? '127.0.0.1', port, (socket) => {
  if (socket === false) {
    console.error(`reference server: cannot listen on ${port}`);
    process.exit(1);
  }
  console.log(`reference server listening on ${port}`);
});

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
