// Reload in place (SIGHUP; with workers > 1 the primary has each worker reload): the new configuration is provisioned beside the running one and swapped in.
// The listeners stay open, requests under way and open WebSockets / HTTP/2 sessions carry on, new requests and
// handshakes get the new routes, sites and certificates; a configuration with errors is refused and the old serves on.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { test, type TestContext } from 'node:test';
import { WebSocket } from 'ws';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { connectH2, get2, request } from '../harness/clients.ts';
import { siteToml, writeConfig } from '../harness/gatehouse.ts';
import { createTestCa } from '../harness/pki.ts';
import { spawnGatehouse } from '../harness/spawn-gatehouse.ts';
import { until, within } from '../harness/wait.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);
const teapot = '[[routes]]\npath = "/teapot"\nstatus = 418\n';

async function serveApp(t: TestContext, workers: number) {
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  const dir = writeConfig({
    main: `workers = ${workers}\n`,
    sites: { app: siteToml(['app.test'], cert, backend.url) },
  });
  const gh = spawnGatehouse(['serve', '--config', dir]);
  t.after(() => {
    if (gh.child.exitCode === null) gh.child.kill('SIGKILL');
  });
  await until(
    () => gh.lines.filter((line) => line.includes('"msg":"listening"')).length === workers,
    'every worker listening',
  );
  const listening = JSON.parse(gh.lines.find((line) => line.includes('"msg":"listening"'))!) as { https: string[] };
  const reloaded = (count: number) =>
    until(
      () => gh.lines.filter((line) => line.includes('"msg":"reloaded"') && line.includes('"sites"')).length >= count,
      'every process reloaded in place',
    );
  return { gh, dir, backend, port: Number(listening.https[0]!.split(':').pop()), reloaded };
}

/** The next message on a WebSocket. */
function message(ws: WebSocket): Promise<string> {
  return within(
    once(ws, 'message').then(([data]) => String(data)),
    'a WebSocket message',
  );
}

for (const workers of [1, 2])
  test(`workers = ${workers}: SIGHUP reloads in place under load: no failed request, the WebSocket and HTTP/2 session opened before carry on, the new route serves; a broken config is refused`, async (t) => {
    const { gh, dir, port, reloaded } = await serveApp(t, workers);
    const get = (p: string) => request(port, { ca: ca.caPem, servername: 'app.test', path: p });
    assert.equal((await get('/teapot')).status, 200, 'the old configuration proxies /teapot');

    const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, {
      ca: ca.caPem,
      servername: 'app.test',
      headers: { host: 'app.test' },
    } as WebSocket.ClientOptions);
    t.after(() => ws.terminate());
    const closes: number[] = [];
    ws.on('close', (code) => closes.push(code));
    assert.match(await message(ws), /echo upstream/);
    const h2 = connectH2(t, port, ca.caPem);
    assert.equal((await get2(h2, '/')).status, 200);

    // Requests on fresh connections keep flowing through the reload; each gets an answer from the old or the new one.
    let loading = true;
    const statuses: number[] = [];
    const load = (async () => {
      while (loading)
        statuses.push(
          await get('/teapot').then(
            (r) => r.status,
            () => -1,
          ),
        );
    })();
    fs.appendFileSync(path.join(dir, 'sites', 'app.toml'), teapot);
    gh.child.kill('SIGHUP');
    await reloaded(workers);
    // Some requests after the swap as well.
    const after = statuses.length;
    while (statuses.length < after + 5) await new Promise((resolve) => setImmediate(resolve));
    loading = false;
    await load;
    assert.ok(
      statuses.every((s) => s === 200 || s === 418) && statuses.at(-1) === 418,
      `answers during the reload (-1 = error): ${statuses.join(', ')}\n${gh.lines.join('\n')}`,
    );

    // Opened before the reload, used after it.
    ws.send('after the reload');
    assert.equal(await message(ws), 'after the reload');
    assert.equal((await get2(h2, '/teapot')).status, 418, 'the open HTTP/2 session gets the new route');
    assert.equal((await get2(h2, '/')).status, 200);
    assert.deepEqual(closes, [], 'the WebSocket was not closed');
    assert.ok(
      !gh.lines.some((line) => /shutting_down|ERR_SHUTTING_DOWN|"msg":"stopped"/.test(line)),
      gh.lines.join('\n'),
    );

    // A broken file: refused with file, line and key; the running configuration keeps serving.
    fs.appendFileSync(path.join(dir, 'sites', 'app.toml'), 'proxy_pass = "http://nope"\n');
    gh.child.kill('SIGHUP');
    const refused = await gh.waitFor(/reload refused/);
    assert.match(refused, /app\.toml:\d+: .*proxy_pass/);
    assert.equal((await get('/teapot')).status, 418);
    ws.send('still here');
    assert.equal(await message(ws), 'still here');

    ws.close();
    await once(ws, 'close');
    h2.close();
    gh.child.kill('SIGTERM');
    const [code] = await once(gh.child, 'close');
    assert.equal(code, 0);
  });

test('workers = 1: a reload applies new sites and certificates to new handshakes; a connection made before keeps its certificate', async (t) => {
  const { gh, dir, backend, port, reloaded } = await serveApp(t, 1);
  const peer = (servername: string) =>
    new Promise<{ serial: string; socket: tls.TLSSocket }>((resolve, reject) => {
      const socket = tls.connect(
        { port, host: '127.0.0.1', servername, ca: ca.caPem, ALPNProtocols: ['http/1.1'] },
        () => resolve({ serial: socket.getPeerCertificate().serialNumber, socket }),
      );
      socket.once('error', reject);
    });
  const before = await peer('app.test');
  t.after(() => before.socket.destroy());
  // b.test is no site yet: without a default site its handshake fails.
  await assert.rejects(peer('b.test'));

  const renewed = ca.issue(['app.test'], 'app-renewed');
  const b = ca.issue(['b.test'], 'b');
  fs.writeFileSync(path.join(dir, 'sites', 'app.toml'), siteToml(['app.test'], renewed, backend.url));
  fs.writeFileSync(path.join(dir, 'sites', 'b.toml'), siteToml(['b.test'], b, backend.url));
  gh.child.kill('SIGHUP');
  await reloaded(1);

  const now = await peer('app.test');
  now.socket.destroy();
  assert.equal(
    now.serial,
    new (await import('node:crypto')).X509Certificate(renewed.certPem).serialNumber,
    'a new handshake gets the new certificate',
  );
  assert.notEqual(now.serial, before.serial);
  assert.equal((await request(port, { ca: ca.caPem, servername: 'b.test' })).status, 200, 'the new site serves');
  // The connection made before the reload still serves, with the certificate it was made with.
  before.socket.write('GET / HTTP/1.1\r\nhost: app.test\r\nconnection: close\r\n\r\n');
  let reply = '';
  for await (const chunk of before.socket) reply += chunk;
  assert.match(reply, /^HTTP\/1\.1 200 /);

  gh.child.kill('SIGTERM');
  assert.equal((await once(gh.child, 'close'))[0], 0);
});
