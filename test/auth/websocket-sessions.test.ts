// A WebSocket lives as long as the session that opened it: sign-out, front-channel logout, a refresh the provider
// refuses and the session's expiry close it at once with 1008 (policy violation) on both sides, in every worker.
// Real parts: oidc-provider logins, a `ws` echo server as the upstream, `ws` clients, `gatehouse serve` processes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { test, type TestContext } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { Browser, freePort, opAuth, startGatehouse, writeAuthConfig } from '../harness/gatehouse-auth.ts';
import { startOP } from '../harness/op.ts';
import { until, within } from '../harness/wait.ts';
import { listenWithWebSockets } from '../harness/backend.ts';

const API = { accept: 'application/json', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' };
const MAIN = path.resolve(import.meta.dirname, '../../src/main.ts');

/** A `ws` echo server that greets first (a frame that may come in the same packet as the 101); records the close code
 *  each of its connections ends with. */
async function wsEcho(t: TestContext) {
  const server = http.createServer((_req, res) => res.end('plain'));
  const wss = new WebSocketServer({ server });
  const closes: number[] = [];
  wss.on('connection', (socket) => {
    socket.send('hello');
    socket.on('message', (data, binary) => {
      // "flood": 16 messages of 1 MB, so that a close comes while a frame is under way.
      if (String(data) === 'flood') for (let i = 0; i < 16; i++) socket.send(Buffer.alloc(1 << 20, i));
      else if (data.toString().length < 100) socket.send(data, { binary });
    });
    socket.on('close', (code) => closes.push(code));
  });
  await listenWithWebSockets(t, server, wss);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, closes, wss };
}

/** A WebSocket through Gatehouse with a browser's cookies, open and echoing. */
async function openSocket(browser: Browser, caPem: string, port: number): Promise<WebSocket> {
  const cookie = [...browser.cookies(`app.test:${port}`)].map(([k, v]) => `${k}=${v}`).join('; ');
  const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, {
    ca: caPem,
    servername: 'app.test',
    headers: { host: `app.test:${port}`, cookie },
  } as WebSocket.ClientOptions);
  const hello = once(ws, 'message');
  await once(ws, 'open');
  assert.equal(String((await hello)[0]), 'hello');
  ws.send('ping');
  assert.equal(String((await once(ws, 'message'))[0]), 'ping');
  return ws;
}

/** Resolves with the close code; fails if the socket is still open after the wait bound. */
function closed(ws: WebSocket): Promise<number> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.reject(new Error('already closed: its code was missed'));
  return within(
    once(ws, 'close').then(([code]) => code as number),
    'the WebSocket to close',
  );
}

/**
 * One [auth] site (app.test) in front of the WebSocket echo, logging in at a real oidc-provider; `sid` asks the
 * provider for the sid claim front-channel logout needs, `auth` adds site options.
 */
async function protectedEcho(t: TestContext, options: { sid?: boolean; auth?: Record<string, string> } = {}) {
  const echo = await wsEcho(t);
  const port = await freePort();
  const origin = `https://app.test:${port}`;
  const op = await startOP({
    redirectUris: [`${origin}/oauth2/callback`],
    postLogoutRedirectUris: [`${origin}/`],
    ...(options.sid ? { sid: true } : {}),
  });
  const gh = await startGatehouse({
    port,
    sites: [
      {
        names: ['app.test'],
        upstream: echo.url,
        auth: {
          ...opAuth(op.issuer),
          email_domains: ['*'],
          ...options.auth,
        },
      },
    ],
  });
  t.after(async () => {
    await gh.stop();
    await op.close();
  });
  return { echo, port, origin, op, gh };
}

test("sign-out, front-channel logout and a refused refresh close that session's WebSockets with 1008, both sides; others stay open", async (t) => {
  const { echo, port, origin, op, gh } = await protectedEcho(t, { sid: true });
  const auth = gh.runtime.siteList[0]!.auth!;
  const login = async (user: string) => {
    const browser = new Browser(gh.caPem);
    assert.equal((await browser.navigate(`${origin}/`, user)).status, 200);
    return {
      browser,
      socket: await openSocket(browser, gh.caPem, port),
      session: async () => await auth.sessions.fromCookie(browser.sessionCookie(origin)![1]),
    };
  };
  const bystander = await login('bob');

  // Sign-out: the user's tab (two sockets) is cut at once; the upstream sees the same close code.
  const alice = await login('alice');
  const second = await openSocket(alice.browser, gh.caPem, port);
  const codes = Promise.all([closed(alice.socket), closed(second)]);
  assert.equal((await alice.browser.request(`${origin}/oauth2/sign_out`)).status, 302);
  assert.deepEqual(await codes, [1008, 1008]);
  await until(() => echo.closes.filter((c) => c === 1008).length === 2, 'the upstream got the close frames');

  // Front-channel logout from the provider (no cookie: by the provider's sid).
  const carol = await login('carol');
  const sid = (await carol.session())!.sid;
  assert.ok(sid, 'the ID token named the provider session');
  const byProvider = closed(carol.socket);
  assert.equal(
    (
      await new Browser(gh.caPem).request(
        `${origin}/oauth2/frontchannel_logout?sid=${encodeURIComponent(sid)}&iss=${encodeURIComponent(op.issuer)}`,
      )
    ).status,
    200,
  );
  assert.equal(await byProvider, 1008);

  // The provider refuses a refresh (grant revoked): the session ends, and so does its WebSocket.
  const revoked = await login('alice');
  const session = (await revoked.session())!;
  await (await op.provider.RefreshToken.find((await auth.sessions.tokens(session)).refreshToken!))!.destroy();
  await auth.sessions.save({ ...session, accessExpiresAt: Date.now() - 1 });
  const byRefresh = closed(revoked.socket);
  assert.equal((await revoked.browser.request(`${origin}/x`, { headers: API })).status, 401);
  assert.equal(await byRefresh, 1008);

  // Another user's WebSocket is untouched.
  assert.equal(bystander.socket.readyState, WebSocket.OPEN);
  bystander.socket.send('still here');
  assert.equal(String((await once(bystander.socket, 'message'))[0]), 'still here');
  assert.equal(gh.runtime.tunnels.size, 1);
  bystander.socket.close();
  await once(bystander.socket, 'close');
});

test('a session that ends while 1 MB frames flow both ways: each side gets whole frames, then the close frame 1008', async (t) => {
  const { echo, port, origin, gh } = await protectedEcho(t);
  const browser = new Browser(gh.caPem);
  assert.equal((await browser.navigate(`${origin}/`, 'alice')).status, 200);
  const socket = await openSocket(browser, gh.caPem, port);
  // A protocol error (a close frame inside another frame) would end the socket with 1002 or 1006, and log 'error'.
  const errors: Error[] = [];
  socket.on('error', (error) => errors.push(error));
  let received = 0;
  socket.on('message', (data: Buffer) => {
    if (data.length === 1 << 20) received++;
  });
  socket.send('flood');
  for (let i = 0; i < 16; i++) socket.send(Buffer.alloc(1 << 20, i));
  await until(() => received >= 2, 'the first large messages arrived');
  const code = closed(socket);
  assert.equal((await browser.request(`${origin}/oauth2/sign_out`)).status, 302);
  assert.equal(await code, 1008);
  assert.deepEqual(errors, []);
  await until(() => echo.closes.length === 1, 'the upstream side closed');
  assert.deepEqual(echo.closes, [1008], 'the upstream got whole frames, then the close frame');
  console.log(`# ${received} of 16 messages reached the client before the close`);
});

test('a WebSocket ends when its session expires (cookie_expire), although it never sends another request', async (t) => {
  const { port, origin, gh } = await protectedEcho(t, { auth: { cookie_expire: '6s' } });
  const browser = new Browser(gh.caPem);
  assert.equal((await browser.navigate(`${origin}/`, 'alice')).status, 200);
  const session = (await gh.runtime.siteList[0]!.auth!.sessions.fromCookie(browser.sessionCookie(origin)![1]))!;
  const socket = await openSocket(browser, gh.caPem, port);
  assert.equal(await closed(socket), 1008);
  assert.ok(Date.now() >= session.expiresAt, 'closed when the session expired, not before');
});

/** `gatehouse serve` as a real process (its JSON log lines collected); stopped with the test. */
function serve(t: TestContext, dir: string) {
  const child = spawn(process.execPath, [MAIN, 'serve', '--config', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line));
    } catch {
      stderr += `${line}\n`;
    }
  });
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  t.after(async () => {
    if (child.exitCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  });
  const line = async (matches: (line: Record<string, unknown>) => boolean, what: string) => {
    for (const deadline = Date.now() + 30_000; ;) {
      const found = lines.find(matches);
      if (found) return found;
      if (Date.now() > deadline || child.exitCode !== null)
        assert.fail(`no log line: ${what}\n${lines.map((l) => JSON.stringify(l)).join('\n')}\n${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return { lines, line };
}

/** One GET over a given keep-alive agent (so a later request reuses its connection, and so its worker). */
function get(
  agent: https.Agent,
  port: number,
  target: string,
  headers: Record<string, string>,
): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    https
      .get(
        {
          host: '127.0.0.1',
          port,
          path: target,
          agent,
          servername: 'app.test',
          headers: { host: `app.test:${port}`, ...headers },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res));
        },
      )
      .on('error', reject);
  });
}

test(
  "workers = 2: a sign-out served by one worker closes the session's WebSocket held by the other",
  { timeout: 120_000 },
  async (t) => {
    const echo = await wsEcho(t);
    const port = await freePort();
    const origin = `https://app.test:${port}`;
    const op = await startOP({ redirectUris: [`${origin}/oauth2/callback`], postLogoutRedirectUris: [`${origin}/`] });
    t.after(() => op.close());
    const dir = writeAuthConfig({
      port,
      global: 'workers = 2',
      sites: [
        {
          names: ['app.test'],
          upstream: echo.url,
          auth: {
            ...opAuth(op.issuer),
            email_domains: ['*'],
          },
        },
      ],
    });
    const caPem = fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8');
    const gh = serve(t, dir);
    await gh.line((l) => l.msg === 'listening', 'a worker listening');
    await until(() => gh.lines.filter((l) => l.msg === 'listening').length === 2, 'two workers listening');

    const browser = new Browser(caPem);
    assert.equal((await browser.navigate(`${origin}/`, 'alice')).status, 200);
    const socket = await openSocket(browser, caPem, port);
    const holder = (await gh.line((l) => l.msg === 'upgrade' && l.path === '/ws', "the upgrade's access-log line")).pid;

    // New connections until one reaches the other worker (the kernel spreads them), then sign out over that one.
    const cookie = [...browser.cookies(`app.test:${port}`)].map(([k, v]) => `${k}=${v}`).join('; ');
    const code = closed(socket);
    let signedOutBy: unknown;
    for (let attempt = 0; attempt < 50 && signedOutBy === undefined; attempt++) {
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: caPem });
      const probe = await get(agent, port, '/oauth2/userinfo', { cookie, accept: 'application/json' });
      assert.equal(probe.statusCode, 200);
      const served = (await gh.line((l) => l.req_id === probe.headers['x-request-id'], "the probe's access-log line"))
        .pid;
      if (served !== holder) {
        const out = await get(agent, port, '/oauth2/sign_out', { cookie });
        assert.equal(out.statusCode, 302);
        signedOutBy = (await gh.line((l) => l.req_id === out.headers['x-request-id'], "the sign-out's access-log line"))
          .pid;
      }
      agent.destroy();
    }
    assert.ok(
      signedOutBy !== undefined && signedOutBy !== holder,
      'the sign-out was served by the worker without the WebSocket',
    );
    assert.equal(await code, 1008);
    await until(() => echo.closes.includes(1008), 'the upstream got the close frame');
  },
);
