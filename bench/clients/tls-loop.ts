// Load generator for handshake costs: `connections` loops, each opening a new TLS connection per request
// (HTTP/1.1, Connection: close), rotating through the SNI names, and, with `resume`, offering the last session
// ticket it got for that name (TLS 1.3 resumption); without it, never a session. Latency includes the handshake.
// Usage: node tls-loop.ts '<json options>'; prints one JSON line: requests, seconds, errors, p50Ms, p99Ms, resumed.
import tls from 'node:tls';
import { percentile } from '../lib/stats.ts';

interface Options {
  port: number;
  names: string[];
  path: string;
  connections: number;
  resume: boolean;
  seconds: number;
  headers: Record<string, string>;
}
const o = JSON.parse(process.argv[2]!) as Options;
/**
 * The key-exchange groups wrk's OpenSSL 3.0 offers (X25519 first), which every system in the bench supports. Node 24's
 * own default puts the post-quantum hybrid X25519MLKEM768 first: Gatehouse and the Node references would take it and
 * nginx 1.22 / Caddy 2.6 cannot, so the systems would not do the same work (bench/README.md, "Method").
 */
const GROUPS = 'X25519:P-256:X448:P-521:P-384';
const extra = Object.entries(o.headers)
  .map(([name, value]) => `${name}: ${value}\r\n`)
  .join('');
const latencies: number[] = [];
let errors = 0;
let resumed = 0;
let next = 0;
const deadline = performance.now() + o.seconds * 1000;

function request(name: string, session: Buffer | undefined): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const started = performance.now();
    let ticket: Buffer | undefined;
    let head = '';
    const socket = tls.connect({
      host: '127.0.0.1',
      port: o.port,
      servername: name,
      session,
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
      ecdhCurve: GROUPS,
    });
    socket.on('session', (s: Buffer) => {
      ticket = s;
    });
    socket.on('secureConnect', () => {
      if (socket.isSessionReused()) resumed++;
    });
    socket.on('data', (chunk: Buffer) => {
      if (head.length < 12) head += chunk.toString('latin1', 0, 12);
    });
    socket.on('error', () => {
      /* counted on close */
    });
    socket.on('close', () => {
      if (head.startsWith('HTTP/1.1 200')) latencies.push(performance.now() - started);
      else errors++;
      resolve(ticket ?? session);
    });
    // write, not end: a half-closed client makes nginx abandon the request (499) as if the client had gone away.
    socket.write(`GET ${o.path} HTTP/1.1\r\nHost: ${name}\r\n${extra}Connection: close\r\n\r\n`);
  });
}

async function loop(): Promise<void> {
  const sessions = new Map<string, Buffer | undefined>();
  while (performance.now() < deadline) {
    const name = o.names[next++ % o.names.length]!;
    const ticket = await request(name, o.resume ? sessions.get(name) : undefined);
    if (o.resume) sessions.set(name, ticket);
  }
}

const started = performance.now();
await Promise.all(Array.from({ length: o.connections }, loop));
const seconds = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
process.stdout.write(
  `${JSON.stringify({ requests: latencies.length, seconds, errors, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99), resumed: resumed / Math.max(1, latencies.length + errors) })}\n`,
);
