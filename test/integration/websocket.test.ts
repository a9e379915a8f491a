// WebSocket upgrades through Gatehouse to a real `ws` server: echo, headers, idle, close in both directions, leaks.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { listenWithWebSockets, refusedPort } from '../harness/backend.ts';
import { request } from '../harness/clients.ts';
import { siteToml, startGatehouse } from '../harness/gatehouse.ts';
import { createTestCa } from '../harness/pki.ts';
import { until } from '../harness/wait.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);

async function wsBackend(t: import('node:test').TestContext) {
  const server = http.createServer((_req, res) => res.end('plain'));
  const wss = new WebSocketServer({ server });
  const upgrades: http.IncomingMessage[] = [];
  wss.on('connection', (socket, req) => {
    upgrades.push(req);
    socket.on('message', (data, binary) => {
      if (String(data) === 'close-please') socket.close(4001, 'asked to');
      else socket.send(data, { binary });
    });
  });
  await listenWithWebSockets(t, server, wss);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, wss, upgrades };
}

function connect(port: number, path = '/ws', headers: Record<string, string> = {}): WebSocket {
  // `servername` (SNI) is passed through to tls.connect by ws, though its types do not list it.
  const options = {
    ca: ca.caPem,
    servername: 'app.test',
    headers: { host: 'app.test', ...headers },
  } as WebSocket.ClientOptions;
  return new WebSocket(`wss://127.0.0.1:${port}${path}`, options);
}

test('echo through the proxy, with forwarding headers set and spoofed ones dropped', async (t) => {
  const backend = await wsBackend(t);
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, backend.url) } });
  const ws = connect(gh.port, '/ws?room=1', { 'x-forwarded-for': '6.6.6.6', x_real_ip: '6.6.6.6' });
  await once(ws, 'open');
  ws.send('hello');
  const [message] = await once(ws, 'message');
  assert.equal(String(message), 'hello');
  ws.send(Buffer.from([1, 2, 3]));
  const [binary] = (await once(ws, 'message')) as [Buffer];
  assert.deepEqual([...binary], [1, 2, 3]);
  const seen = backend.upgrades[0]!;
  assert.equal(seen.url, '/ws?room=1');
  assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(seen.headers['x_real_ip'], undefined);
  assert.equal(seen.headers['x-forwarded-proto'], 'https');
  assert.equal(seen.headers.host, 'app.test');
  ws.close();
  await once(ws, 'close');
});

test('an idle WebSocket outlives the HTTP read timeout', async (t) => {
  const backend = await wsBackend(t);
  const gh = await startGatehouse(t, {
    sites: { app: siteToml(['app.test'], cert, backend.url, '', 'read_timeout = "150ms"') },
  });
  const ws = connect(gh.port);
  await once(ws, 'open');
  // Stay silent for several read timeouts: this wait is the behaviour under test.
  await new Promise((resolve) => setTimeout(resolve, 600));
  assert.equal(ws.readyState, WebSocket.OPEN);
  ws.send('still here');
  assert.equal(String((await once(ws, 'message'))[0]), 'still here');
  ws.close();
  await once(ws, 'close');
});

test('close codes propagate both ways', async (t) => {
  const backend = await wsBackend(t);
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, backend.url) } });
  const ws = connect(gh.port);
  await once(ws, 'open');
  ws.send('close-please');
  const [code, reason] = (await once(ws, 'close')) as [number, Buffer];
  assert.equal(code, 4001);
  assert.equal(String(reason), 'asked to');

  const ws2 = connect(gh.port);
  await once(ws2, 'open');
  const [serverSide] = [...backend.wss.clients].filter((c) => c.readyState === WebSocket.OPEN);
  const closedUpstream = once(serverSide!, 'close') as Promise<[number, Buffer]>;
  ws2.close(4002, 'bye');
  const [upstreamCode] = await closedUpstream;
  assert.equal(upstreamCode, 4002);
});

test('many WebSockets opened and closed leave no sockets behind on either side', async (t) => {
  const backend = await wsBackend(t);
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, backend.url) } });
  for (let round = 0; round < 5; round++) {
    const sockets = Array.from({ length: 20 }, () => connect(gh.port));
    await Promise.all(sockets.map((ws) => once(ws, 'open')));
    await Promise.all(
      sockets.map(async (ws, i) => {
        ws.send(`m${i}`);
        assert.equal(String((await once(ws, 'message'))[0]), `m${i}`);
        // Half close cleanly, half vanish abruptly.
        if (i % 2) ws.close();
        else ws.terminate();
        await once(ws, 'close');
      }),
    );
  }
  const backendConnections = () =>
    new Promise<number>((resolve) => backend.server.getConnections((_e, n) => resolve(n)));
  await until(() => gh.connections() === 0, 'Gatehouse holds no client sockets');
  await until(async () => (await backendConnections()) === 0, 'the backend holds no sockets from Gatehouse');
  assert.equal(backend.upgrades.length, 100);
});

test('upgrade errors: refused upstream 502, route without websocket 404, deny rule 403, HTTP read timeout before 101 gives 504', async (t) => {
  const refused = await refusedPort();
  const backend = await wsBackend(t);
  const silent = http.createServer();
  silent.on('upgrade', () => {
    /* never answers */
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    silent.closeAllConnections();
    silent.close();
  });
  const gh = await startGatehouse(t, {
    sites: {
      app:
        siteToml(['app.test'], cert, `http://127.0.0.1:${refused}`, `deny_paths = ['^/denied']`) +
        `\n[[routes]]\npath = "/nows"\nupstream = "${backend.url}"\nwebsocket = false\n` +
        `\n[[routes]]\npath = "/slow"\nupstream = "http://127.0.0.1:${(silent.address() as AddressInfo).port}"\nread_timeout = "200ms"\n`,
    },
  });
  for (const [path, status] of [
    ['/ws', 502],
    ['/nows', 404],
    ['/denied', 403],
    ['/slow', 504],
  ] as const) {
    const ws = connect(gh.port, path);
    const [, response] = (await once(ws, 'unexpected-response')) as [unknown, http.IncomingMessage];
    assert.equal(response.statusCode, status, path);
    assert.ok(response.headers['x-request-id']);
    ws.on('error', () => {
      /* terminating a socket that never opened reports an error by design */
    });
    ws.terminate();
  }
  await gh.logLine((line) => line.msg === 'upgrade' && line.error === 'ERR_UPSTREAM_UNREACHABLE');
});

test('a client that resets its connection mid-tunnel ends that tunnel only; the process serves on', async (t) => {
  const backend = await wsBackend(t);
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, backend.url) } });
  for (let i = 0; i < 5; i++) {
    // Our own TCP socket under the TLS one, so the test can reset it (resetAndDestroy works on TCP handles only).
    let tcp!: net.Socket;
    const options = {
      headers: { host: 'app.test' },
      createConnection: () => {
        tcp = net.connect(gh.port, '127.0.0.1');
        return tls.connect({ socket: tcp, servername: 'app.test', ca: ca.caPem });
      },
    } as unknown as WebSocket.ClientOptions;
    const ws = new WebSocket(`wss://127.0.0.1:${gh.port}/ws`, options);
    ws.on('error', () => {
      /* the reset is ours */
    });
    await once(ws, 'open');
    ws.send('x'.repeat(64 * 1024));
    // A TCP reset instead of a close: the server's read fails with ECONNRESET (an uncaught exception before the fix).
    tcp.resetAndDestroy();
    await once(ws, 'close');
  }
  const ws = connect(gh.port);
  await once(ws, 'open');
  ws.send('still serving');
  assert.equal(String((await once(ws, 'message'))[0]), 'still serving');
  ws.close();
  await once(ws, 'close');
  await until(() => gh.connections() === 0, 'Gatehouse holds no client sockets');
});

test('one mapping of upstream failures: an upstream name that does not resolve is 502 ERR_UPSTREAM_UNREACHABLE for an upgrade as for a request', async (t) => {
  // .invalid never resolves (RFC 6761 §6.4): the lookup fails with ENOTFOUND (EAI_AGAIN without a resolver).
  const gh = await startGatehouse(t, { sites: { app: siteToml(['app.test'], cert, 'http://upstream.invalid:8080') } });
  const plain = await request(gh.port, {
    ca: ca.caPem,
    servername: 'app.test',
    path: '/ws',
    headers: { accept: 'application/json' },
  });
  assert.equal(plain.status, 502);
  assert.equal(JSON.parse(plain.body).error, 'ERR_UPSTREAM_UNREACHABLE');
  const ws = connect(gh.port);
  ws.on('error', () => {
    /* a refused upgrade ends with an error by design */
  });
  const [, response] = (await once(ws, 'unexpected-response')) as [unknown, http.IncomingMessage];
  ws.terminate();
  assert.equal(response.statusCode, 502);
  const id = response.headers['x-request-id'];
  const line = await gh.logLine((l) => l.req_id === id && l.msg === 'upgrade', "the upgrade's log line");
  assert.equal(line.error, 'ERR_UPSTREAM_UNREACHABLE', 'the same code as the request (was ERR_UPSTREAM_RESET)');
  assert.match(String(line.cause), /ENOTFOUND|EAI_AGAIN/);
});
