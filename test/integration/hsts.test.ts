// `hsts` in a site file: Strict-Transport-Security on every HTTPS response of that site (proxied, our error pages,
// bare statuses, /oauth2/* pages and login redirects), never on another site's or on plain HTTP.
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { closedPort, startBackend } from '../harness/backend.ts';
import { request, request2 } from '../harness/clients.ts';
import { opAuth, startGatehouse as startAuthGatehouse } from '../harness/gatehouse-auth.ts';
import { siteToml, startGatehouse, writeConfig } from '../harness/gatehouse.ts';
import { startOP } from '../harness/op.ts';
import { createTestCa } from '../harness/pki.ts';

const ca = createTestCa();
const strictCert = ca.issue(['strict.test']);
const plainCert = ca.issue(['plain.test']);

const routes = '[[routes]]\npath = "/gone"\nstatus = 410\n';

test('hsts = true: max-age=31536000 on proxied responses, error pages and bare statuses (HTTP/1.1 and HTTP/2); none for a site without it, nor on plain HTTP', async (t) => {
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  // An upstream that sends its own header keeps it (as behind nginx's add_header, where browsers use the first).
  const own = await startBackend(t, (_req, res) =>
    res.writeHead(200, { 'strict-transport-security': 'max-age=60' }).end('own'),
  );
  const gh = await startGatehouse(t, {
    http: true,
    sites: {
      strict: siteToml(
        ['strict.test'],
        strictCert,
        backend.url,
        'hsts = true\ndeny_paths = ["^/denied"]',
        `${routes}[[routes]]\npath = "/own"\nupstream = "${own.url}"\n`,
      ),
      plain: siteToml(['plain.test'], plainCert, backend.url, 'deny_paths = ["^/denied"]', routes),
    },
  });
  const seen = async (servername: string) => {
    const h1 = async (path: string) =>
      (await request(gh.port, { ca: ca.caPem, servername, path })).headers['strict-transport-security'];
    const h2 = async (path: string) =>
      (await request2(gh.port, { ca: ca.caPem, servername, path })).headers['strict-transport-security'];
    return {
      proxied: await h1('/'),
      denied: await h1('/denied'),
      status: await h1('/gone'),
      h2proxied: await h2('/'),
      h2denied: await h2('/denied'),
    };
  };
  const year = 'max-age=31536000';
  assert.deepEqual(await seen('strict.test'), {
    proxied: year,
    denied: year,
    status: year,
    h2proxied: year,
    h2denied: year,
  });
  assert.equal(
    (await request(gh.port, { ca: ca.caPem, servername: 'strict.test', path: '/own' })).headers[
      'strict-transport-security'
    ],
    'max-age=60',
  );
  assert.equal(
    (await request2(gh.port, { ca: ca.caPem, servername: 'strict.test', path: '/own' })).headers[
      'strict-transport-security'
    ],
    'max-age=60',
  );
  assert.deepEqual(await seen('plain.test'), {
    proxied: undefined,
    denied: undefined,
    status: undefined,
    h2proxied: undefined,
    h2denied: undefined,
  });
  // Plain HTTP: the redirect to HTTPS never carries it (RFC 6797 §7.2).
  const redirect = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: gh.httpPort, path: '/', headers: { host: 'strict.test' } }, (res) => {
        res.resume();
        resolve(res);
      })
      .on('error', reject);
  });
  assert.equal(redirect.statusCode, 308);
  assert.equal(redirect.headers['strict-transport-security'], undefined);
});

test('[hsts] table: max_age, include_subdomains and preload, on /oauth2 pages and login redirects too', async (t) => {
  const port = await closedPort();
  const op = await startOP({ redirectUris: [`https://strict.test:${port}/oauth2/callback`] });
  t.after(() => op.close());
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  const gh = await startAuthGatehouse({
    port,
    sites: [
      {
        names: ['strict.test'],
        upstream: backend.url,
        extra: '[hsts]\nmax_age = "730d"\ninclude_subdomains = true\npreload = true\n',
        auth: opAuth(op.issuer),
      },
    ],
  });
  t.after(() => gh.stop());
  const header = 'max-age=63072000; includeSubDomains; preload';
  const get = async (path: string, accept = 'text/html') => {
    const reply = await request(gh.port, {
      ca: gh.caPem,
      servername: 'strict.test',
      path,
      headers: { accept, 'sec-fetch-mode': accept === 'text/html' ? 'navigate' : 'cors' },
    });
    return `${reply.status} ${reply.headers['strict-transport-security']}`;
  };
  assert.deepEqual(
    {
      signIn: await get('/oauth2/sign_in'),
      start: await get('/oauth2/start?rd=%2F'),
      auth: await get('/oauth2/auth', 'application/json'),
      userinfo: await get('/oauth2/userinfo', 'application/json'),
      challenge: await get('/'),
      api: await get('/x', 'application/json'),
    },
    {
      signIn: `200 ${header}`,
      start: `302 ${header}`,
      auth: `401 ${header}`,
      userinfo: `401 ${header}`,
      challenge: `302 ${header}`,
      api: `401 ${header}`,
    },
  );
});

test('hsts settings are checked: preload needs include_subdomains and a year, unknown keys and other types are refused', () => {
  const site = (hsts: string) => siteToml(['strict.test'], strictCert, 'http://127.0.0.1:9', hsts);
  const problems = (hsts: string) => {
    try {
      loadConfig(writeConfig({ sites: { strict: site(hsts) } }));
      return [];
    } catch (error) {
      return (
        (error as { problems?: Array<{ key: string; message: string }> }).problems?.map(
          (p) => `${p.key}: ${p.message}`,
        ) ?? [String(error)]
      );
    }
  };
  assert.deepEqual(problems('hsts = false'), []);
  assert.deepEqual(problems('hsts = { max_age = 0 }'), []);
  assert.match(problems('hsts = { preload = true }').join('\n'), /^hsts\.preload: .*include_subdomains/);
  assert.match(
    problems('hsts = { preload = true, include_subdomains = true, max_age = "30d" }').join('\n'),
    /^hsts\.preload: .*365d/,
  );
  assert.match(problems('hsts = { max_agee = 1 }').join('\n'), /^hsts\.max_agee: unknown key/);
  assert.match(problems('hsts = "max-age=1"').join('\n'), /^hsts: .*true, false or a table/);
  assert.match(problems('hsts = { max_age = "soon" }').join('\n'), /^hsts\.max_age: .*not a duration/);
});
