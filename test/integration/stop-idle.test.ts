// A stop with nobody waiting for an answer ends at once, whatever idle connections are left: keep-alive HTTP/1.1 and
// HTTP/2 clients that went away without closing (a laptop put to sleep: Gatehouse's FIN and GOAWAY reach no one), a
// connection that never began its TLS handshake, and a WebSocket whose upstream half-closed it. Each runs against
// the real `gatehouse serve` process with a 60 s shutdown_grace; the stop must end well before that.
// And outside a stop: a WebSocket whose upstream closed it is closed toward its client too, even one that went away.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { test, type TestContext } from 'node:test';
import express from 'express';
import { WebSocket } from 'ws';
import { siteToml, startGatehouse, writeConfig } from '../harness/gatehouse.ts';
import { createTestCa } from '../harness/pki.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);
const MAIN = path.resolve(import.meta.dirname, '../../src/main.ts');
const GRACE_MS = 60_000;

/**
 * An Express 5 app; its server also takes WebSocket upgrades by hand. Every connection can be half-closed from here
 * (FIN, then silence: Node's HTTP server keeps its sockets half-open).
 */
async function startUpstream(t: TestContext) {
  const app = express();
  app.get('/', (_req, res) => {
    res.json({ ok: true });
  });
  const server = http.createServer(app);
  const connections: net.Socket[] = [];
  server.on('connection', (socket) => connections.push(socket));
  const tunnels: net.Socket[] = [];
  server.on('upgrade', (req, socket: net.Socket) => {
    const accept = crypto
      .createHash('sha1')
      .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.on('error', () => {});
    socket.resume(); // reads (and drops) what the client sends, and sees Gatehouse's FIN
    tunnels.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of tunnels) socket.destroy();
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, tunnels, connections };
}

/**
 * A TCP relay between a client and Gatehouse that can go dark: it then forwards nothing, reads nothing and never
 * closes, like the path to a client that vanished. Gatehouse sees an open, silent connection.
 */
async function startRelay(t: TestContext, target: number) {
  const pairs: Array<[net.Socket, net.Socket]> = [];
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const toGatehouse = net.connect({ host: '127.0.0.1', port: target, allowHalfOpen: true });
    for (const socket of [client, toGatehouse]) socket.on('error', () => {});
    client.pipe(toGatehouse);
    toGatehouse.pipe(client);
    pairs.push([client, toGatehouse]);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const pair of pairs) for (const socket of pair) socket.destroy();
    server.close();
  });
  return {
    port: (server.address() as AddressInfo).port,
    darken() {
      for (const [client, toGatehouse] of pairs) {
        client.unpipe(toGatehouse);
        toGatehouse.unpipe(client);
        client.pause();
        toGatehouse.pause();
      }
    },
  };
}

/** `gatehouse serve` (one process) for app.test → upstream, with a 60 s grace. */
async function serve(t: TestContext, upstream: string) {
  const dir = writeConfig({
    main: `workers = 1\n[lifecycle]\nshutdown_grace = "${GRACE_MS / 1000}s"\n`,
    sites: { app: siteToml(['app.test'], cert, upstream) },
  });
  const child = spawn(process.execPath, [MAIN, 'serve', '--config', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const closed = once(child, 'close').then(([code]) => code as number | null);
  const lines: string[] = [];
  readline.createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line));
  child.stderr!.on('data', (chunk) => lines.push(String(chunk)));
  const listening = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const line = lines.find((l) => l.includes('"msg":"listening"'));
      if (line) {
        clearInterval(timer);
        resolve(line);
      } else if (child.exitCode !== null) {
        clearInterval(timer);
        reject(new Error(lines.join('\n')));
      }
    }, 20);
  });
  const port = Number((JSON.parse(listening) as { https: string[] }).https[0]!.split(':').pop());
  return {
    port,
    /** SIGTERM, then how long until the process exited (bounded: a stop held past the grace period fails the test). */
    async stop(): Promise<number> {
      const started = performance.now();
      child.kill('SIGTERM');
      const code = await Promise.race([
        closed,
        new Promise<'still running'>((resolve) => setTimeout(resolve, GRACE_MS * 2, 'still running')),
      ]);
      const ms = performance.now() - started;
      assert.equal(code, 0, lines.join('\n'));
      assert.ok(
        ms < GRACE_MS,
        `the stop took ${Math.round(ms)} ms: it waited for the grace period\n${lines.join('\n')}`,
      );
      return ms;
    },
  };
}

test(
  'stop: a keep-alive HTTP/1.1 client that went away after its answer does not hold it',
  { timeout: 180_000 },
  async (t) => {
    const upstream = await startUpstream(t);
    const gh = await serve(t, upstream.url);
    const relay = await startRelay(t, gh.port);
    const agent = new https.Agent({ keepAlive: true });
    t.after(() => agent.destroy());
    const status = await new Promise<number>((resolve, reject) => {
      https
        .get(
          {
            host: '127.0.0.1',
            port: relay.port,
            servername: 'app.test',
            headers: { host: 'app.test' },
            ca: ca.caPem,
            agent,
          },
          (res) => {
            res.resume().on('end', () => resolve(res.statusCode!));
          },
        )
        .on('error', reject);
    });
    assert.equal(status, 200);
    relay.darken();
    await gh.stop();
  },
);

test(
  'stop: an HTTP/2 client that went away after its answer does not hold it (GOAWAY, then the connection is closed)',
  { timeout: 180_000 },
  async (t) => {
    const upstream = await startUpstream(t);
    const gh = await serve(t, upstream.url);
    const relay = await startRelay(t, gh.port);
    const session = http2.connect(`https://127.0.0.1:${relay.port}`, { ca: ca.caPem, servername: 'app.test' });
    session.on('error', () => {});
    t.after(() => session.destroy());
    const stream = session.request({ ':path': '/', ':authority': 'app.test' });
    const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
    stream.resume();
    await once(stream, 'end');
    assert.equal(headers[':status'], 200);
    relay.darken();
    await gh.stop();
  },
);

test(
  'stop: an idle upstream connection that the upstream half-closed is closed, and does not hold it',
  { timeout: 180_000 },
  async (t) => {
    const upstream = await startUpstream(t);
    const gh = await serve(t, upstream.url);
    const status = await new Promise<number>((resolve, reject) => {
      https
        .get(
          {
            host: '127.0.0.1',
            port: gh.port,
            servername: 'app.test',
            headers: { host: 'app.test' },
            ca: ca.caPem,
            agent: false,
          },
          (res) => {
            res.resume().on('end', () => resolve(res.statusCode!));
          },
        )
        .on('error', reject);
    });
    assert.equal(status, 200);
    // The upstream's keep-alive connection from Gatehouse's pool, now idle: the upstream sends its FIN and waits. The
    // pool must close its side (no CLOSE-WAIT left behind): the upstream then reads Gatehouse's FIN.
    const [pooled] = upstream.connections;
    const ended = once(pooled!, 'end');
    pooled!.end();
    await ended;
    await gh.stop();
  },
);

test('stop: a connection that never began its TLS handshake does not hold it', { timeout: 180_000 }, async (t) => {
  const upstream = await startUpstream(t);
  const gh = await serve(t, upstream.url);
  const silent = net.connect({ host: '127.0.0.1', port: gh.port });
  silent.on('error', () => {});
  t.after(() => silent.destroy());
  await once(silent, 'connect');
  await gh.stop();
});

test(
  'stop: a WebSocket whose upstream half-closed it, its client gone, does not hold it',
  { timeout: 180_000 },
  async (t) => {
    const upstream = await startUpstream(t);
    const gh = await serve(t, upstream.url);
    await halfClosedWebSocket(t, gh.port, upstream);
    await gh.stop();
  },
);

test(
  'a WebSocket whose upstream half-closed it is closed toward its client, even a client that went away',
  { timeout: 180_000 },
  async (t) => {
    const upstream = await startUpstream(t);
    const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, upstream.url) } });
    await halfClosedWebSocket(t, gh.port, upstream);
    for (
      const deadline = Date.now() + 30_000;
      gh.connections() > 0;
      await new Promise((resolve) => setTimeout(resolve, 25))
    ) {
      assert.ok(
        Date.now() < deadline,
        'the client connection is still open 30 s after the upstream closed the WebSocket',
      );
    }
  },
);

/**
 * A WebSocket through a relay that then goes silent (its client gone), whose upstream sends its FIN and keeps its
 * socket open (half-closed); resolves once Gatehouse's own FIN has come back to the upstream.
 */
async function halfClosedWebSocket(
  t: TestContext,
  port: number,
  upstream: Awaited<ReturnType<typeof startUpstream>>,
): Promise<void> {
  const relay = await startRelay(t, port);
  const ws = new WebSocket(`wss://127.0.0.1:${relay.port}/ws`, {
    ca: ca.caPem,
    servername: 'app.test',
    headers: { host: 'app.test' },
  } as WebSocket.ClientOptions);
  ws.on('error', () => {});
  t.after(() => ws.terminate());
  await once(ws, 'open');
  relay.darken();
  const tunnel = upstream.tunnels[0]!;
  const ended = once(tunnel, 'end');
  tunnel.end();
  await ended;
}
