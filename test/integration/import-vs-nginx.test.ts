// The proof that an import answers like the nginx it came from: Debian's nginx runs the original configuration
// (oauth2-proxy's auth_request pattern, its /oauth2/ locations pointed at a running Gatehouse instead of
// oauth2-proxy), Gatehouse serves `gatehouse import`'s output of the same file, and the same requests go to both
// with a real OpenID Provider (oidc-provider): status, the Location's path and parameters, the headers the upstream
// receives.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { startBackend } from '../harness/backend.ts';
import { Browser, freePort, type Reply } from '../harness/gatehouse-auth.ts';
import { serveFolder } from '../harness/gatehouse.ts';
import { ca, fixtureCopy, gatehouse } from '../harness/import-fixtures.ts';
import { startOP } from '../harness/op.ts';
import { until } from '../harness/wait.ts';

const NGINX = '/usr/sbin/nginx';
const HOST = 'app.example.test';

test(
  'nginx on the original and Gatehouse on its import answer the same requests alike',
  { timeout: 240_000 },
  async (t) => {
    assert.ok(fs.existsSync(NGINX), `${NGINX} is missing: run \`npm run setup\` (apt-get install nginx-light)`);
    const [ghPort, ghHttpPort, nginxPort] = [await freePort(), await freePort(), await freePort()];
    const op = await startOP({
      redirectUris: [ghPort, nginxPort].map((port) => `https://${HOST}:${port}/oauth2/callback`),
      clientId: 'app',
      clientSecret: 'app-client-secret',
    });
    t.after(() => op.close());
    const backend = await startBackend(t, (_req, res) => res.end('ok'));

    // The original: the oauth2-proxy pattern fixture, on loopback ports, one worker, the backend and the provider here.
    const dir = fixtureCopy('oauth2-pattern');
    const original = fs
      .readFileSync(`${dir}/in/nginx.conf`, 'utf8')
      .replace('worker_processes auto;', 'worker_processes 1;')
      .replace('listen 80;', `listen 127.0.0.1:${ghHttpPort};`)
      .replace('listen 443 ssl http2;', `listen 127.0.0.1:${ghPort} ssl http2;`)
      .replaceAll('http://127.0.0.1:3000', backend.url);
    fs.writeFileSync(`${dir}/in/nginx.conf`, original);
    fs.writeFileSync(`${dir}/in/app.secret`, 'app-client-secret\n');
    const cfg = `${dir}/in/oauth2-proxy.cfg`;
    fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace('https://id.example.test/realms/main', op.issuer));
    const imported = gatehouse(['import', `${dir}/in/nginx.conf`, cfg, '--out', `${dir}/gatehouse`]);
    assert.equal(imported.code, 0, imported.stderr);
    const gh = await serveFolder(`${dir}/gatehouse`);
    t.after(() => gh.stop());

    // nginx runs the same file with its /oauth2/ locations sent to Gatehouse's site (over TLS, SNI = the site) instead
    // of oauth2-proxy, and with the port in the Host and rd it passes on (the test's ports are not 443).
    const prefix = path.join(dir, 'nginx');
    fs.mkdirSync(path.join(prefix, 'logs'), { recursive: true });
    fs.copyFileSync(`${dir}/in/mime.types`, path.join(prefix, 'mime.types'));
    fs.writeFileSync(
      path.join(prefix, 'nginx.conf'),
      original
        .replace(`listen 127.0.0.1:${ghHttpPort};`, `listen 127.0.0.1:${await freePort()};`)
        .replace(`listen 127.0.0.1:${ghPort} ssl http2;`, `listen 127.0.0.1:${nginxPort} ssl http2;`)
        .replaceAll(
          'proxy_pass       http://127.0.0.1:4180;',
          `proxy_pass https://127.0.0.1:${ghPort}; proxy_ssl_server_name on; proxy_ssl_name ${HOST};`,
        )
        .replaceAll('$host$request_uri', '$http_host$request_uri')
        .replace('proxy_set_header Host                    $host;', 'proxy_set_header Host $http_host;'),
    );
    const nginx = spawn(
      NGINX,
      ['-p', prefix, '-c', 'nginx.conf', '-e', 'logs/error.log', '-g', `daemon off; pid ${prefix}/nginx.pid;`],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let nginxErr = '';
    nginx.stderr.on('data', (d) => (nginxErr += d));
    t.after(() => {
      nginx.kill('SIGTERM');
    });
    await until(
      () =>
        new Promise<boolean>((resolve, reject) => {
          if (nginx.exitCode !== null) return reject(new Error(`nginx exited ${nginx.exitCode}: ${nginxErr}`));
          const socket = net.connect(nginxPort, '127.0.0.1', () => resolve(!!socket.end()));
          socket.on('error', () => resolve(false));
        }),
      () =>
        `nginx listening on ${nginxPort}: ${nginxErr}${fs.readFileSync(path.join(prefix, 'logs/error.log'), 'utf8')}`,
    );

    const origins = { nginx: `https://${HOST}:${nginxPort}`, gatehouse: `https://${HOST}:${ghPort}` };
    /** The same request to both; the upstream's view of it (headers) when it reached the upstream. */
    const both = async (
      run: (browser: Browser, origin: string) => Promise<Reply>,
      browsers?: Record<string, Browser>,
    ) => {
      const out: Record<string, { reply: Reply; upstream?: Record<string, string | string[] | undefined> }> = {};
      for (const [name, origin] of Object.entries(origins)) {
        const seen = backend.requests.length;
        const reply = await run(browsers?.[name] ?? new Browser(ca.caPem), origin);
        out[name] = { reply, upstream: backend.requests.slice(seen).at(-1)?.headers };
      }
      return out as Record<keyof typeof origins, (typeof out)[string]>;
    };

    // Anonymous page load: 302 to the provider's authorization endpoint, with the same parameters.
    const page = await both((b, o) => b.request(`${o}/some/page?x=1`));
    const authorize = (r: Reply, origin: string) => {
      const url = new URL(r.headers.location!);
      const redirect = new URL(url.searchParams.get('redirect_uri')!);
      assert.equal(redirect.origin, origin, 'the callback comes back to the proxy the browser used');
      return {
        status: r.status,
        at: url.origin + url.pathname,
        params: [...url.searchParams.keys()].sort(),
        client_id: url.searchParams.get('client_id'),
        callback: redirect.pathname,
        scope: url.searchParams.get('scope'),
      };
    };
    assert.deepEqual(authorize(page.nginx.reply, origins.nginx), authorize(page.gatehouse.reply, origins.gatehouse));
    assert.equal(page.gatehouse.reply.status, 302);
    assert.equal(new URL(page.gatehouse.reply.headers.location!).origin, op.issuer);
    assert.equal(page.nginx.upstream, undefined);
    assert.equal(page.gatehouse.upstream, undefined);

    // Anonymous API call: 401, never a redirect; the upstream sees nothing.
    const api = await both((b, o) => b.request(`${o}/api/items`, { headers: { accept: 'application/json' } }));
    assert.deepEqual([api.nginx.reply.status, api.gatehouse.reply.status], [401, 401]);
    assert.deepEqual([api.nginx.upstream, api.gatehouse.upstream], [undefined, undefined]);

    // The health check and the public path need no login.
    const health = await both((b, o) => b.request(`${o}/healthz`));
    assert.deepEqual([health.nginx.reply.status, health.gatehouse.reply.status], [204, 204]);
    const open = await both((b, o) => b.request(`${o}/public/logo.png`));
    assert.deepEqual([open.nginx.reply.status, open.gatehouse.reply.status], [200, 200]);
    assertUpstreamHeadersAlike(open.nginx.upstream!, open.gatehouse.upstream!);

    // Log in through each (alice, in the allowed group), then the same page: the upstream gets the identity.
    const browsers = { nginx: new Browser(ca.caPem), gatehouse: new Browser(ca.caPem) };
    const login = await both((b, o) => b.navigate(`${o}/some/page?x=1`, 'alice'), browsers);
    assert.deepEqual([login.nginx.reply.status, login.gatehouse.reply.status], [200, 200]);
    assert.equal(login.nginx.reply.url.pathname + login.nginx.reply.url.search, '/some/page?x=1');
    assert.equal(login.gatehouse.reply.url.pathname + login.gatehouse.reply.url.search, '/some/page?x=1');
    assert.equal(login.nginx.upstream!['x-auth-request-email'], 'alice@example.test');
    assertUpstreamHeadersAlike(login.nginx.upstream!, login.gatehouse.upstream!);
    const apiIn = await both(
      (b, o) => b.request(`${o}/api/items`, { headers: { accept: 'application/json' } }),
      browsers,
    );
    assert.deepEqual([apiIn.nginx.reply.status, apiIn.gatehouse.reply.status], [200, 200]);
    assertUpstreamHeadersAlike(apiIn.nginx.upstream!, apiIn.gatehouse.upstream!);
  },
);

/**
 * Every header nginx's upstream received, Gatehouse's upstream received with the same value; Host without the port
 * (the two listen on different test ports). Not compared: Connection (nginx speaks HTTP/1.0 to upstreams and says
 * close) and Cookie (nginx passes the session cookie on, Gatehouse removes its own cookies).
 */
function assertUpstreamHeadersAlike(
  nginx: Record<string, string | string[] | undefined>,
  gatehouse: Record<string, string | string[] | undefined>,
) {
  const compared = Object.keys(nginx).filter((k) => !['connection', 'cookie'].includes(k));
  assert.ok(compared.includes('host') && compared.includes('x-forwarded-proto'), compared.join(', '));
  const strip = (v: unknown) => String(v).replace(/:\d+$/, '');
  for (const key of compared)
    assert.equal(
      key === 'host' ? strip(gatehouse[key]) : gatehouse[key],
      key === 'host' ? strip(nginx[key]) : nginx[key],
      `upstream header ${key}`,
    );
}
