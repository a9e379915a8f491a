// [https]/[http] proxy_protocol behind a real HAProxy (send-proxy = v1, send-proxy-v2 = v2): the client address from
// the header is the one in X-Real-IP / X-Forwarded-For, the access log, ip_rules and rate limits. Connections from a
// peer outside [proxy] trusted_proxies, and malformed headers from inside it, are closed (fail closed).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { test, type TestContext } from 'node:test';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { readAll } from '../harness/backend.ts';
import { startGatehouse, type TestGatehouse } from '../harness/gatehouse.ts';
import { freePort } from '../harness/net.ts';
import { createTestCa } from '../harness/pki.ts';
import { until, within } from '../harness/wait.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);

async function gatehouse(t: TestContext): Promise<TestGatehouse> {
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  return startGatehouse(t, {
    http: true,
    main: '[https]\nproxy_protocol = true\n[http]\nproxy_protocol = true\n[proxy]\ntrusted_proxies = ["127.0.0.1"]\n',
    sites: {
      app: `server_names = ["app.test"]
[tls]
cert = ${JSON.stringify(cert.certFile)}
key = ${JSON.stringify(cert.keyFile)}
[[routes]]
path = "/"
upstream = "${backend.url}"
[[routes]]
path = "/denied"
upstream = "${backend.url}"
ip_rules = ["deny 127.0.0.2", "allow all"]
`,
    },
  });
}

/** HAProxy in TCP mode in front of Gatehouse's HTTPS port: one frontend per PROXY protocol version. */
async function startHaproxy(t: TestContext, target: number): Promise<{ v1: number; v2: number }> {
  const v1 = await freePort();
  const v2 = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-haproxy-'));
  const file = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(
    file,
    `defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend v1
  bind 127.0.0.1:${v1}
  default_backend gatehouse_v1
frontend v2
  bind 127.0.0.1:${v2}
  default_backend gatehouse_v2
backend gatehouse_v1
  server gh 127.0.0.1:${target} send-proxy
backend gatehouse_v2
  server gh 127.0.0.1:${target} send-proxy-v2
`,
  );
  const child = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  t.after(() => {
    child.kill('SIGTERM');
  });
  for (const port of [v1, v2])
    await until(
      () =>
        new Promise<boolean>((resolve) => {
          const socket = net.connect(port, '127.0.0.1', () => {
            socket.destroy();
            resolve(true);
          });
          socket.on('error', () => resolve(false));
        }),
      () => `haproxy listening on ${port}: ${stderr}`,
    );
  return { v1, v2 };
}

/** GET over TLS (SNI app.test) to a port, from a chosen loopback source address. */
function get(port: number, urlPath: string, localAddress: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, localAddress, path: urlPath, ca: ca.caPem, servername: 'app.test', agent: false },
      (res) => void readAll(res).then((body) => resolve({ status: res.statusCode!, body }), reject),
    );
    req.setHeader('host', 'app.test');
    req.setHeader('x-forwarded-for', '6.6.6.6');
    req.on('error', reject);
    req.end();
  });
}

test('HAProxy send-proxy and send-proxy-v2: the client address from the header is the client everywhere', async (t) => {
  const gh = await gatehouse(t);
  const haproxy = await startHaproxy(t, gh.port);
  for (const [version, port] of Object.entries(haproxy)) {
    const reply = await get(port, `/${version}`, '127.0.0.2');
    assert.equal(reply.status, 200, version);
    const seen = JSON.parse(reply.body) as { headers: Record<string, string> };
    // The balancer (127.0.0.1) is trusted for the PROXY header only; the client (127.0.0.2) is not a trusted proxy,
    // so its own X-Forwarded-For is replaced.
    assert.equal(seen.headers['x-real-ip'], '127.0.0.2', version);
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.2', version);
    const line = await gh.logLine((l) => l.msg === 'request' && l.path === `/${version}`);
    assert.equal(line.client, '127.0.0.2');
    assert.equal((await get(port, '/denied', '127.0.0.2')).status, 403, version);
    assert.equal((await get(port, '/denied', '127.0.0.3')).status, 200, version);
    // HTTP/2: the session's socket carries the client too.
    const session = http2.connect(`https://app.test:${port}`, {
      createConnection: () =>
        tls.connect({
          socket: net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' }),
          ca: ca.caPem,
          servername: 'app.test',
          ALPNProtocols: ['h2'],
        }),
    });
    t.after(() => session.destroy());
    const stream = session.request({ ':path': '/h2', ':authority': 'app.test' });
    const h2 = JSON.parse(await readAll(stream)) as { headers: Record<string, string> };
    session.close();
    assert.equal(h2.headers['x-real-ip'], '127.0.0.2', `${version} over HTTP/2`);
  }
});

/** Writes `data` to a port and resolves with what came back before the connection closed. */
function exchange(port: number, data: Buffer | string, localAddress = '127.0.0.1'): Promise<string> {
  return within(
    new Promise((resolve) => {
      let received = '';
      const socket = net.connect({ port, host: '127.0.0.1', localAddress }, () => socket.write(data));
      socket.on('data', (chunk) => (received += chunk.toString('latin1')));
      socket.on('error', () => {});
      socket.on('close', () => resolve(received));
    }),
    'the connection to close',
  );
}

test('refused: a peer outside trusted_proxies, no header, malformed v1 and v2 headers; the plain-HTTP listener takes v1', async (t) => {
  const gh = await gatehouse(t);
  const request = 'GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n';
  const v2Bad = Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x31, 0x11, 0, 0])]);
  for (const port of [gh.port, gh.httpPort!]) {
    assert.equal(await exchange(port, `PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n${request}`, '127.0.0.3'), '');
    assert.equal(await exchange(port, request), '');
    assert.equal(await exchange(port, `PROXY TCP4 10.0.0.999 10.0.0.2 1 2\r\n${request}`), '');
    assert.equal(await exchange(port, v2Bad), '');
  }
  const reasons = gh.logs.filter((l) => l.msg === 'PROXY protocol: connection refused').map((l) => l.reason);
  assert.equal(reasons.length, 8);
  assert.match(String(reasons[0]), /not in \[proxy\] trusted_proxies/);
  assert.match(String(reasons[1]), /does not start with a PROXY protocol header/);
  assert.match(String(reasons[2]), /malformed v1 header/);
  assert.match(String(reasons[3]), /version 3/);
  // A good v1 header on the plain-HTTP listener: the request behind it is answered (308 to HTTPS).
  const answer = await exchange(gh.httpPort!, `PROXY TCP4 192.0.2.7 10.0.0.2 4444 80\r\n${request}`);
  assert.match(answer, /^HTTP\/1\.1 308 /);
  const line = await gh.logLine((l) => l.client === '192.0.2.7', 'the plain-HTTP request from 192.0.2.7');
  assert.ok(line);
});

test('proxy_protocol without trusted_proxies is a configuration error naming the key', async (t) => {
  await assert.rejects(
    startGatehouse(t, {
      main: '[https]\nproxy_protocol = true\n',
      sites: {
        app: `server_names = ["app.test"]\n[tls]\ncert = ${JSON.stringify(cert.certFile)}\nkey = ${JSON.stringify(cert.keyFile)}\n[[routes]]\npath = "/"\nstatus = 204\n`,
      },
    }),
    /gatehouse\.toml:\d+: https\.proxy_protocol: list the balancers that send the PROXY protocol header in \[proxy\] trusted_proxies/,
  );
});
