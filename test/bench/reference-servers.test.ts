// The bench's raw-socket reference forwarders must answer right, or their figures would compare a broken forwarder
// with working ones: every framing the upstream may use (Content-Length, chunked, close-delimited, no body, HEAD,
// 1xx before the response) arrives whole, request bodies reach the upstream, and a response llhttp rejects
// (conflicting Content-Length) is a 502, not a relayed smuggling vector.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { writeCertificates } from '../../bench/lib/configs.ts';
import { start, stop } from '../../bench/lib/procs.ts';
import { until } from '../harness/wait.ts';

const SERVERS = path.resolve(import.meta.dirname, '../../bench/servers');

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

for (const file of ['rawpool-forwarder.ts', 'ownloop-tls.ts']) {
  test(`bench reference ${file}: every response framing relayed whole, bad framing a 502`, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-ref-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    await writeCertificates(dir, ['localhost']);
    const upstream = http.createServer((req, res) => {
      if (req.url === '/chunked') {
        res.write('ab');
        setImmediate(() => res.end('cd'));
      } else if (req.url === '/204') res.writeHead(204).end();
      else if (req.url === '/big') res.end(Buffer.alloc(3_000_000, 'x'));
      else if (req.url === '/hints') {
        res.writeEarlyHints({ link: '</a.css>; rel=preload' });
        res.end('after hints');
      } else if (req.url === '/echo') {
        let size = 0;
        req.on('data', (chunk: Buffer) => (size += chunk.length));
        req.on('end', () => res.end(`${req.method} ${size} ${req.headers['x-test']}`));
      } else res.end(`hello ${req.method}`);
    });
    // Raw answers node:http would refuse to send: a close-delimited body and conflicting lengths.
    const raw = net.createServer((socket) =>
      socket.once('data', (head: Buffer) =>
        socket.end(
          head.toString().startsWith('GET /conflict')
            ? 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd'
            : 'HTTP/1.1 200 OK\r\n\r\nclose-delimited body',
        ),
      ),
    );
    const [upstreamPort, rawPort] = [await listen(upstream), await listen(raw)];
    t.after(() => {
      upstream.close();
      raw.close();
    });
    const dispatcher = new Agent({ connect: { ca: fs.readFileSync(path.join(dir, 'localhost.crt')) } });
    t.after(() => dispatcher.close());
    const forwarders: Record<string, number> = {};
    for (const [name, port] of [
      ['node', upstreamPort],
      ['raw', rawPort],
    ] as const) {
      // Port 0, read back from the server: a port found free first could be taken by a test running beside this one.
      const options = {
        port: 0,
        upstreamPort: port,
        cert: path.join(dir, 'localhost.crt'),
        key: path.join(dir, 'localhost.key'),
      };
      const proc = start(file, 'client', process.execPath, [path.join(SERVERS, file), JSON.stringify(options)]);
      t.after(() => stop(proc));
      await until(
        () => proc.log.some((line) => /^listening on \d+$/.test(line)) || proc.child.exitCode !== null,
        () => `${file} to listen:\n${proc.log.join('\n')}`,
      );
      const listening = proc.log.find((line) => /^listening on \d+$/.test(line));
      assert.ok(listening, proc.log.join('\n'));
      forwarders[name] = Number(listening.split(' ').pop());
    }
    const get = async (to: string, urlPath: string, options: { method?: string; body?: string } = {}) => {
      const response = await request(`https://localhost:${forwarders[to]}${urlPath}`, {
        dispatcher,
        method: (options.method ?? 'GET') as 'GET',
        body: options.body,
        headers: { 'x-test': 'passed' },
      });
      return { status: response.statusCode, body: await response.body.text() };
    };

    assert.deepEqual(await get('node', '/'), { status: 200, body: 'hello GET' });
    assert.deepEqual(await get('node', '/chunked'), { status: 200, body: 'abcd' });
    assert.deepEqual(await get('node', '/204'), { status: 204, body: '' });
    assert.deepEqual(await get('node', '/', { method: 'HEAD' }), { status: 200, body: '' });
    assert.deepEqual(await get('node', '/hints'), { status: 200, body: 'after hints' });
    assert.deepEqual(await get('node', '/echo', { method: 'POST', body: 'y'.repeat(70_000) }), {
      status: 200,
      body: 'POST 70000 passed',
    });
    const big = await get('node', '/big');
    assert.equal(big.body.length, 3_000_000);
    // Many at once over the keep-alive pool: each answer is its own request's.
    const many = await Promise.all(Array.from({ length: 100 }, () => get('node', '/')));
    assert.ok(many.every((r) => r.status === 200 && r.body === 'hello GET'));
    assert.deepEqual(await get('raw', '/'), { status: 200, body: 'close-delimited body' });
    assert.equal((await get('raw', '/conflict')).status, 502);
  });
}
