// Path confusion: the path a rule matches and the path the upstream serves must be the same resource. A corpus of
// tricky paths is sent to two real frameworks (Express 5, Hono on @hono/node-server) directly, to learn which of their
// handlers answers, and through Gatehouse over HTTP/1.1 and HTTP/2 (paths sent verbatim, nothing normalizes them on
// the client side) to sites guarded by skip_auth_routes (a real [auth] at a real oidc-provider), deny_paths and a
// `status = 403` route. No /secret handler may ever answer through Gatehouse, nothing a rule covers may reach the
// upstream, ambiguous paths get 400, and whatever Gatehouse forwards must reach the upstream as exactly the
// normalized path.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { getRequestListener } from '@hono/node-server';
import express from 'express';
import { Hono } from 'hono';
import { WebSocketServer } from 'ws';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/problems.ts';
import { freePort, opAuth, startGatehouse, type SiteSpec } from '../harness/gatehouse-auth.ts';
import { writeConfig } from '../harness/gatehouse.ts';
import { startOP } from '../harness/op.ts';
import { createTestCa } from '../harness/pki.ts';
import { listenWithWebSockets } from '../harness/backend.ts';

/** [path as sent, what the upstream must receive (path + query), or null: refused with 400]. */
const CORPUS: [string, string | null][] = [
  // Baselines.
  ['/public', '/public'],
  ['/secret', '/secret'],
  ['/public/page?x=1', '/public/page?x=1'],
  ['/secret/', '/secret/'],
  // Encoded dots, in every case: unreserved characters are decoded, then dot segments resolved (RFC 3986 §6.2.2).
  ['/secret/%2e%2e/public', '/public'],
  ['/secret/%2E%2E/public', '/public'],
  ['/secret/%2e%2E/public', '/public'],
  ['/secret/.%2e/public', '/public'],
  ['/secret/%2E./public', '/public'],
  ['/public/%2e%2e/secret', '/secret'],
  ['/%2e%2e/secret', '/secret'],
  ['/public/%2e/page', '/public/page'],
  ['/secret/%2e', '/secret/'],
  // Encoded slashes and backslashes, both cases: never a separator, refused unless the route opts in.
  ['/secret/..%2fpublic', null],
  ['/secret/..%2Fpublic', null],
  ['/secret/..%5cpublic', null],
  ['/secret/..%5Cpublic', null],
  ['/secret/%2e%2e%2fpublic', null],
  ['/public%2f..%2fsecret', null],
  ['/public/..%2F..%2Fsecret', null],
  ['/%2fsecret', null],
  ['/secret%2F', null],
  ['/public/..%5c..%5csecret', null],
  // Raw backslashes.
  ['/secret/..\\public', null],
  ['/public\\..\\secret', null],
  ['/public/..\\secret', null],
  // Double encoding stays literal after one decode, on both sides.
  ['/secret/%252e%252e/public', '/secret/%252e%252e/public'],
  ['/public/%252e%252e/secret', '/public/%252e%252e/secret'],
  ['/secret/..%252fpublic', '/secret/..%252fpublic'],
  ['/public/..%252f..%252fsecret', '/public/..%252f..%252fsecret'],
  ['/public/%25%32%65%25%32%65/secret', '/public/%252e%252e/secret'],
  // Overlong and other invalid UTF-8.
  ['/secret/%c0%ae%c0%ae/public', null],
  ['/public/%c0%ae%c0%ae/secret', null],
  ['/public/%c0%af..%c0%afsecret', null],
  ['/public/%e0%80%ae%e0%80%ae/secret', null],
  ['/public/%ed%a0%80', null],
  ['/public/%ff', null],
  // Invalid percent-encoding, encoded control characters, raw bytes outside ASCII (UTF-8 é sent as two raw bytes).
  ['/secret/%zz', null],
  ['/public/%2', null],
  ['/public%', null],
  ['/public/%u002e%u002e/secret', null],
  ['/public/%00/../secret', null],
  ['/public/..%00/secret', null],
  ['/public%0a', null],
  ['/public/%09', null],
  ['/public/%7f', null],
  ['/public/\u00c3\u00a9', null],
  // Path parameters: servlet containers drop ";…" from a segment, so "..;" is ".." to them; refused unless the route opts in.
  ['/secret/..;/public', null],
  ['/public/..;/secret', null],
  ['/;x/secret', null],
  ['/secret;jsessionid=1', null],
  ['/public;x=1/page', null],
  ['/public/%2e%2e;/secret', null],
  ['/public/..%3b/secret', '/public/..%3B/secret'],
  // Mixed-case escapes; escapes of reserved characters stay encoded, upper-cased.
  ['/%73%65cret', '/secret'],
  ['/%70ublic/%2E%2e/secret', '/secret'],
  ['/publ%69c/page', '/public/page'],
  ['/public/%7euser', '/public/~user'],
  ['/public/a%2ab', '/public/a%2Ab'],
  ['/public/%41%42', '/public/AB'],
  ['/public/%c3%a9', '/public/%C3%A9'],
  // Trailing dots are literal; a final "." or ".." segment leaves a trailing slash (RFC 3986 §5.2.4).
  ['/secret.', '/secret.'],
  ['/secret..', '/secret..'],
  ['/secret/.', '/secret/'],
  ['/public/page.', '/public/page.'],
  ['/public/page/..', '/public/'],
  ['/public/..', '/'],
  ['/public/.', '/public/'],
  // Raw dot segments, sent as they are.
  ['/secret/../public', '/public'],
  ['/public/../secret', '/secret'],
  ['/secret/./../public', '/public'],
  ['/../secret', '/secret'],
  ['/public/../../secret', '/secret'],
  ['/public/page/../../secret', '/secret'],
  ['/public/./page', '/public/page'],
  // Repeated slashes are merged (before dot segments are resolved).
  ['//secret', '/secret'],
  ['///secret', '/secret'],
  ['//public', '/public'],
  ['/public//page', '/public/page'],
  ['/public//../secret', '/secret'],
  ['/secret//..//public', '/public'],
  // A fragment never belongs in a request; the query is not part of the path, and goes on unchanged.
  ['/public#/../secret', null],
  ['/secret#/../public', null],
  ['/public?/../secret', '/public?/../secret'],
  ['/secret?/../public', '/secret?/../public'],
  ['/public/%3f/../../secret', '/secret'],
  ['/public%23/../secret', '/secret'],
];

interface Framework {
  name: string;
  url: string;
  port: number;
  received: Map<string, string>;
  upgrades: Map<string, string>;
}

/** A framework on 127.0.0.1 whose /public, /secret and /files handlers say who answered, recording each request target it receives. */
async function startFramework(t: TestContext, name: 'express' | 'hono'): Promise<Framework> {
  let listener: http.RequestListener;
  const answer = (handler: string) => `handler=${handler}`;
  if (name === 'express') {
    const app = express();
    // Mounted prefixes, as a sub-application or express.static would be.
    for (const handler of ['public', 'secret', 'files'])
      app.use(`/${handler}`, (_req, res) => {
        res.send(answer(handler));
      });
    app.use((_req, res) => {
      res.status(404).send(answer('none'));
    });
    listener = app;
  } else {
    const app = new Hono();
    for (const handler of ['public', 'secret', 'files']) {
      app.all(`/${handler}`, (c) => c.text(answer(handler)));
      app.all(`/${handler}/*`, (c) => c.text(answer(handler)));
    }
    app.all('*', (c) => c.text(answer('none'), 404));
    listener = getRequestListener(app.fetch);
  }
  const received = new Map<string, string>();
  const upgrades = new Map<string, string>();
  const server = http.createServer((req, res) => {
    if (req.headers['x-probe']) received.set(String(req.headers['x-probe']), req.url!);
    listener(req, res);
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket, req) => {
    upgrades.set(String(req.headers['x-probe']), req.url!);
    socket.close();
  });
  await listenWithWebSockets(t, server, wss);
  const port = (server.address() as AddressInfo).port;
  return { name, url: `http://127.0.0.1:${port}`, port, received, upgrades };
}

interface Answer {
  status: number;
  body: string;
  requestId?: string;
}

/** One HTTP/1.1 request; node:http writes the path into the request line verbatim. */
function send1(options: {
  port: number;
  path: string;
  host: string;
  probe: string;
  ca?: string;
  agent?: http.Agent;
  headers?: Record<string, string>;
}): Promise<Answer> {
  const client = options.ca ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      {
        host: '127.0.0.1',
        port: options.port,
        path: options.path,
        agent: options.agent ?? false,
        servername: options.host,
        ca: options.ca,
        headers: { host: options.host, 'x-probe': options.probe, ...options.headers },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode!, body, requestId: res.headers['x-request-id'] as string | undefined }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** One HTTP/2 request on an open session; :path is sent as given. */
function send2(
  session: http2.ClientHttp2Session,
  options: { path: string; host: string; probe: string; headers?: Record<string, string> },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':path': options.path,
      ':authority': options.host,
      'x-probe': options.probe,
      ...options.headers,
    });
    let status = 0;
    let requestId: string | undefined;
    let body = '';
    stream.on('response', (headers) => {
      status = Number(headers[':status']);
      requestId = headers['x-request-id'] as string | undefined;
    });
    stream.setEncoding('utf8').on('data', (chunk: string) => {
      body += chunk;
    });
    stream.on('end', () => resolve({ status, body, requestId }));
    stream.on('error', reject);
  });
}

const handlerOf = (body: string) => /^handler=(\w+)$/.exec(body)?.[1];
const NAVIGATION = { accept: 'text/html', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' };

/** Express and Hono, each behind three sites: skip_auth_routes (real [auth]), deny_paths, and a `status = 403` route. */
async function setup(t: TestContext, opts: { optIn?: boolean } = {}) {
  const frameworks = [await startFramework(t, 'express'), await startFramework(t, 'hono')];
  const port = await freePort();
  const op = await startOP({
    redirectUris: frameworks.map((f) => `https://auth-${f.name}.test:${port}/oauth2/callback`),
  });
  t.after(() => op.close());
  const auth = {
    ...opAuth(op.issuer),
    skip_auth_routes: ['^/public'],
  };
  const sites = frameworks.flatMap(
    (f): { kind: 'auth' | 'deny' | 'status'; framework: Framework; spec: SiteSpec & { names: [string] } }[] =>
      [
        { kind: 'auth', framework: f, spec: { names: [`auth-${f.name}.test`], upstream: f.url, auth } },
        {
          kind: 'deny',
          framework: f,
          spec: {
            names: [`deny-${f.name}.test`],
            upstream: f.url,
            top: `deny_paths = ['^/secret']`,
            extra: opts.optIn
              ? `[[routes]]\npath = "/files/"\nupstream = "${f.url}"\nallow_encoded_slashes = true\nallow_path_parameters = true\n`
              : '',
          },
        },
        {
          kind: 'status',
          framework: f,
          spec: {
            names: [`status-${f.name}.test`],
            upstream: f.url,
            extra: '[[routes]]\npath = "/secret"\nstatus = 403\n',
          },
        },
      ] as const,
  );
  const gh = await startGatehouse({ port, sites: sites.map((s) => s.spec) });
  t.after(() => gh.stop());
  return { frameworks, sites, gh };
}

/** Which handler of the framework answers each corpus path when nothing stands in front of it. */
async function directAnswers(f: Framework): Promise<Map<string, string | undefined>> {
  const answers = new Map<string, string | undefined>();
  for (const [path] of CORPUS)
    answers.set(path, handlerOf((await send1({ port: f.port, path, host: '127.0.0.1', probe: 'direct' })).body));
  return answers;
}

test('no corpus path reaches a /secret handler past skip_auth_routes, deny_paths or a status route; upstreams get the normalized path (HTTP/1.1 and HTTP/2)', async (t) => {
  const { frameworks, sites, gh } = await setup(t);
  const direct = new Map<Framework, Map<string, string | undefined>>();
  for (const f of frameworks) direct.set(f, await directAnswers(f));
  // The corpus means something only if the frameworks do fall for it when unprotected.
  for (const f of frameworks) {
    const tricky = CORPUS.filter(
      ([path, forward]) =>
        direct.get(f)!.get(path) === 'secret' && (forward === null || !forward.startsWith('/secret')),
    );
    assert.ok(
      tricky.length >= 4,
      `${f.name} answers few tricky paths with its /secret handler: ${tricky.map(([p]) => p).join(' ')}`,
    );
  }

  const bypasses: string[] = [];
  const mismatches: string[] = [];
  let probe = 0;
  await Promise.all(
    sites.map(async ({ kind, framework: f, spec }) => {
      const host = spec.names[0];
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
      const session = http2.connect(`https://127.0.0.1:${gh.port}`, { ca: gh.caPem, servername: host });
      session.on('error', () => {});
      t.after(() => {
        agent.destroy();
        session.close();
      });
      for (const [path, forward] of CORPUS) {
        for (const protocol of ['h1', 'h2'] as const) {
          const id = `p${++probe}`;
          const answer =
            protocol === 'h1'
              ? await send1({ port: gh.port, path, host, probe: id, ca: gh.caPem, agent, headers: NAVIGATION })
              : await send2(session, { path, host, probe: id, headers: NAVIGATION });
          const where = `${kind}/${f.name} ${protocol} ${JSON.stringify(path)} → ${answer.status} ${handlerOf(answer.body) ?? ''}`;
          const upstreamGot = f.received.get(id);
          // The framework's own answer says which handler served what Gatehouse forwarded.
          if (handlerOf(answer.body) === 'secret') bypasses.push(`${where} (upstream got ${upstreamGot})`);
          if (forward === null) {
            // Raw bytes outside ASCII never get past llhttp in HTTP/1.1: Node answers 400 before Gatehouse sees the request.
            const byParser = protocol === 'h1' && /[^\x21-\x7e]/.test(path) && answer.status === 400;
            if (!byParser && (answer.status !== 400 || !answer.body.includes('ERR_PATH_REFUSED') || !answer.requestId))
              mismatches.push(`${where}: expected 400 ERR_PATH_REFUSED with a request id`);
            continue;
          }
          if (upstreamGot !== undefined && upstreamGot !== forward)
            mismatches.push(`${where}: upstream got ${upstreamGot}, expected ${forward}`);
          // Not over-refusing: what no rule covers is forwarded.
          const matched = decodeURIComponent(forward.split('?')[0]!);
          const refusedByRule = kind === 'auth' ? !matched.startsWith('/public') : matched.startsWith('/secret');
          if (!refusedByRule && upstreamGot === undefined)
            mismatches.push(`${where}: expected to be forwarded as ${forward}`);
          if (refusedByRule && (upstreamGot !== undefined || ![302, 401, 403].includes(answer.status)))
            bypasses.push(`${where} (upstream got ${upstreamGot})`);
        }
      }
    }),
  );
  assert.equal(bypasses.length, 0, `protected content reached:\n${bypasses.join('\n')}`);
  assert.equal(mismatches.length, 0, `rules and upstream disagree:\n${mismatches.join('\n')}`);
});

test('WebSocket upgrades: refused the same way, and the upstream gets the normalized path', async (t) => {
  const { frameworks, gh } = await setup(t);
  const express = frameworks[0]!;
  const upgrade = (path: string, probe: string) =>
    new Promise<number>((resolve, reject) => {
      const req = https.request({
        host: '127.0.0.1',
        port: gh.port,
        path,
        agent: false,
        servername: 'auth-express.test',
        ca: gh.caPem,
        headers: {
          host: 'auth-express.test',
          connection: 'Upgrade',
          upgrade: 'websocket',
          'sec-websocket-version': '13',
          'sec-websocket-key': crypto.randomBytes(16).toString('base64'),
          'x-probe': probe,
        },
      });
      req.on('upgrade', (res, socket) => {
        socket.destroy();
        resolve(res.statusCode!);
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end();
    });
  const refused = [
    ['/secret/..%2fpublic', 400],
    ['/secret/..%5Cpublic', 400],
    ['/public/..;/secret', 400],
    ['/public/%2e%2e/secret', 401],
    ['/public/../secret', 401],
  ] as const;
  for (const [path, status] of refused) {
    assert.equal(await upgrade(path, path), status, path);
    assert.equal(express.upgrades.get(path), undefined, `${path} reached the upstream`);
  }
  assert.equal(await upgrade('/public/%2e/./socket%7e?room=%2F1', 'ok'), 101);
  assert.equal(express.upgrades.get('ok'), '/public/socket~?room=%2F1');
});

test('a route may opt in to encoded slashes and ";": they stay literal, for the rules and for the upstream', async (t) => {
  const { frameworks, gh } = await setup(t, { optIn: true });
  const agent = new https.Agent({ keepAlive: true });
  t.after(() => agent.destroy());
  for (const f of frameworks) {
    const host = `deny-${f.name}.test`;
    const get = (path: string, probe: string) => send1({ port: gh.port, path, host, probe, ca: gh.caPem, agent });
    for (const [path, forward] of [
      ['/files/a%2fb', '/files/a%2Fb'],
      ['/files/a%5Cb', '/files/a%5Cb'],
      ['/files/report;v=2', '/files/report;v=2'],
      ['/files/%2e/a%2Fb?x=%2F', '/files/a%2Fb?x=%2F'],
    ] as const) {
      const probe = `${f.name}${path}`;
      const answer = await get(path, probe);
      assert.equal(answer.body, 'handler=files', `${f.name} ${path}`);
      assert.equal(f.received.get(probe), forward, `${f.name} ${path}`);
    }
    // Dot segments and deny rules still apply on that route; other routes still refuse.
    assert.equal((await get('/files/%2e%2e/secret', `${f.name}-x1`)).status, 403);
    assert.equal((await get('/public/a%2fb', `${f.name}-x2`)).status, 400);
    assert.equal((await get('/public/a;b', `${f.name}-x3`)).status, 400);
  }
  // Files are looked up by their decoded path, where %2F is a separator: a static or status route cannot opt in.
  const ca = createTestCa();
  const cert = ca.issue(['a.test']);
  const dir = writeConfig({
    sites: {
      a:
        `server_names = ["a.test"]\n[tls]\ncert = "${cert.certFile}"\nkey = "${cert.keyFile}"\n` +
        `[[routes]]\npath = "/"\nroot = "."\nallow_encoded_slashes = true\n[[routes]]\npath = "/x"\nstatus = 410\nallow_encoded_slashes = true\n`,
    },
  });
  assert.throws(
    () => loadConfig(dir),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.deepEqual(
        error.problems.map((p) => p.key).sort(),
        ['routes[0].allow_encoded_slashes', 'routes[1].allow_encoded_slashes'],
        JSON.stringify(error.problems),
      );
      return true;
    },
  );
});
