// Load generator for WebSocket round-trips: opens `connections` sockets through the proxy, then each sends a
// `bytes`-long message and waits for its echo, again and again, for `seconds`. Connection setup is not timed.
// Usage: node ws-echo.ts '<json options>'; prints one JSON line: requests (round-trips), seconds, errors, p50Ms, p99Ms.
import { once } from 'node:events';
import WebSocket from 'ws';
import { percentile } from '../lib/stats.ts';

interface Options {
  port: number;
  names: string[];
  path: string;
  connections: number;
  bytes: number;
  seconds: number;
  headers: Record<string, string>;
}
const o = JSON.parse(process.argv[2]!) as Options;
const message = Buffer.alloc(o.bytes, 'x');
const latencies: number[] = [];
let errors = 0;

const sockets = await Promise.all(
  Array.from({ length: o.connections }, async () => {
    const name = o.names[0]!;
    // ws hands `servername` on to tls.connect (its types omit it): SNI and Host name the same site.
    const options: WebSocket.ClientOptions & { servername: string } = {
      servername: name,
      headers: { host: name, ...o.headers },
      rejectUnauthorized: false,
      perMessageDeflate: false,
    };
    const socket = new WebSocket(`wss://127.0.0.1:${o.port}${o.path}`, options);
    await once(socket, 'open');
    return socket;
  }),
);

async function loop(socket: WebSocket, deadline: number): Promise<void> {
  while (performance.now() < deadline) {
    const started = performance.now();
    const reply = once(socket, 'message');
    socket.send(message);
    try {
      const [data] = (await reply) as [Buffer];
      if (data.length === o.bytes) latencies.push(performance.now() - started);
      else errors++;
    } catch {
      errors++;
      return;
    }
  }
}

const started = performance.now();
await Promise.all(sockets.map((socket) => loop(socket, started + o.seconds * 1000)));
const seconds = (performance.now() - started) / 1000;
for (const socket of sockets) socket.terminate();
latencies.sort((a, b) => a - b);
process.stdout.write(
  `${JSON.stringify({ requests: latencies.length, seconds, errors, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) })}\n`,
);
