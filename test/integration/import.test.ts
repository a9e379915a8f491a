// `gatehouse import` through the command line (src/main.ts as a child process) on real-shaped nginx + oauth2-proxy
// setups in test/fixtures/import/, then `gatehouse check` on what it wrote.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { parseTomlSource } from '../../src/config/toml-source.ts';
import { fixtureCopy, gatehouse } from '../harness/import-fixtures.ts';

const NGINX = '/usr/sbin/nginx';

function siteFile(out: string, name: string) {
  return parseTomlSource(fs.readFileSync(path.join(out, 'sites', `${name}.toml`), 'utf8')).value as Record<string, any>;
}

/** Every generated key line ends with "# from FILE:LINE", and that line of that file exists. */
function assertEveryLineHasItsSource(out: string) {
  const files = ['gatehouse.toml', ...fs.readdirSync(path.join(out, 'sites')).map((f) => `sites/${f}`)];
  for (const file of files) {
    for (const line of fs.readFileSync(path.join(out, file), 'utf8').split('\n')) {
      if (line === '' || line.startsWith('#') || line.startsWith('[') || line.startsWith('sites_dir')) continue;
      const from = /# from ([^;,]+?):(\d+)[;,]?/.exec(line);
      assert.ok(from, `${file}: no "# from file:line" on: ${line}`);
      const lines = fs.readFileSync(from[1]!, 'utf8').split('\n');
      assert.ok(Number(from[2]) <= lines.length, `${file}: ${from[1]}:${from[2]} is past the end`);
    }
  }
}

test('the reference setup imports, every line names its source, and gatehouse check accepts the result', () => {
  const dir = fixtureCopy('reference');
  const out = path.join(dir, 'out');
  const r = gatehouse(['import', `${dir}/in/nginx.conf`, `${dir}/in/oauth2-proxy_code.refol.us.cfg`, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /gatehouse check: configuration is valid/);
  assert.equal(gatehouse(['check', '--config', out]).code, 0);
  assertEveryLineHasItsSource(out);

  const site = siteFile(out, 'code.refol.us');
  assert.deepEqual(site.server_names, ['code.refol.us']);
  assert.deepEqual(site.deny_paths, ['/\\.ht']);
  assert.deepEqual(site.upstreams, { backend: { servers: ['http://127.0.0.1:8080'] } });
  assert.deepEqual(site.routes[0], {
    path: '/',
    upstream: 'backend',
    max_body_size: '10m',
    connect_timeout: '90s',
    send_timeout: '90s',
    read_timeout: '90s',
    request_buffering: false,
  });
  assert.deepEqual(site.routes[1], {
    path: '/.well-known/acme-challenge/',
    root: '/var/www/certbot',
    index: ['index.html', 'index.htm', 'index.php'],
  });
  assert.equal(site.auth.provider, 'entra-id');
  assert.equal(site.auth.client_secret, '${file:secrets/code.refol.us.client_secret}');
  assert.deepEqual(site.auth.skip_auth_routes, ['^/\\.well-known/acme-challenge/']);
  assert.equal(site.auth.pass_authorization_header, true);
  const secret = path.join(out, 'secrets/code.refol.us.client_secret');
  assert.equal(fs.readFileSync(secret, 'utf8'), 'YOUR_AZURE_APP_CLIENT_SECRET\n');
  assert.equal(fs.statSync(secret).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.dirname(secret)).mode & 0o777, 0o700);
  const main = parseTomlSource(fs.readFileSync(path.join(out, 'gatehouse.toml'), 'utf8')).value as Record<string, any>;
  assert.deepEqual(main.https.listen, ['0.0.0.0:443', '[::]:443']);
  assert.equal(main.metrics.listen, '127.0.0.1:9100');
  const text = fs.readFileSync(path.join(out, 'sites/code.refol.us.toml'), 'utf8');
  assert.match(text, /^upstream = "backend" {2}# from .*\/in\/nginx\.conf:28$/m);
  assert.match(
    text,
    /^# .*nginx\.conf:32: proxy_set_header X-Forwarded-Proto \$scheme: X-Forwarded-Proto is always set$/m,
  );
});

test('OAUTH2_PROXY_* variables override the .cfg, and alone stand for one', () => {
  const dir = fixtureCopy('reference');
  const cfg = path.join(dir, 'in/oauth2-proxy_code.refol.us.cfg');
  fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace(/^client_secret = .*\n/m, ''));
  const env = {
    OAUTH2_PROXY_CLIENT_SECRET: 'from-the-environment',
    OAUTH2_PROXY_EMAIL_DOMAINS: 'refol.us,example.test',
  };
  let r = gatehouse(['import', `${dir}/in/nginx.conf`, cfg, '--out', `${dir}/a`], env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readFileSync(`${dir}/a/secrets/code.refol.us.client_secret`, 'utf8'), 'from-the-environment\n');
  assert.deepEqual(siteFile(`${dir}/a`, 'code.refol.us').auth.email_domains, ['refol.us', 'example.test']);
  assert.match(fs.readFileSync(`${dir}/a/sites/code.refol.us.toml`, 'utf8'), /# from \$OAUTH2_PROXY_EMAIL_DOMAINS$/m);

  r = gatehouse(['import', `${dir}/in/nginx.conf`, '--out', `${dir}/b`], {
    ...env,
    OAUTH2_PROXY_PROVIDER: 'oidc',
    OAUTH2_PROXY_OIDC_ISSUER_URL: 'https://id.example.test',
    OAUTH2_PROXY_CLIENT_ID: 'code',
    OAUTH2_PROXY_COOKIE_SECRET: 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=',
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(siteFile(`${dir}/b`, 'code.refol.us').auth.client_id, 'code');
});

test('the auth_request + /oauth2/ + error_page 401 pattern becomes [auth] with skip_auth_routes and api_routes', () => {
  const dir = fixtureCopy('oauth2-pattern');
  fs.writeFileSync(`${dir}/in/app.secret`, 'app-client-secret\n');
  const out = path.join(dir, 'out');
  const r = gatehouse(['import', `${dir}/in/nginx.conf`, `${dir}/in/oauth2-proxy.cfg`, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(gatehouse(['check', '--config', out]).code, 0);
  assertEveryLineHasItsSource(out);
  const site = siteFile(out, 'app.example.test');
  assert.deepEqual(
    site.routes.map((route: { path: string }) => route.path),
    ['/', '/api/', '/public/', '/healthz'],
  );
  assert.deepEqual(site.routes[3], { path: '/healthz', status: 204 });
  assert.deepEqual(site.hsts, { max_age: '63072000s', include_subdomains: true, preload: false });
  assert.deepEqual(site.auth.skip_auth_routes, ['^/public/', '^/healthz']);
  assert.deepEqual(site.auth.api_routes, ['^/api/']);
  assert.equal(site.auth.client_secret, `\${file:${dir}/in/app.secret}`);
  assert.deepEqual(site.auth.allowed_groups, ['developers']);
  assert.equal(site.auth.pass_authorization_header, true);
  const main = parseTomlSource(fs.readFileSync(path.join(out, 'gatehouse.toml'), 'utf8')).value as Record<string, any>;
  assert.deepEqual(main.http.listen, ['0.0.0.0:80']);
  assert.equal(main.workers, 'auto');
});

test('WebSocket maps, an upstream group and certbot certificates (acme = true)', () => {
  const dir = fixtureCopy('websocket');
  const out = path.join(dir, 'out');
  const r = gatehouse(['import', `${dir}/in/nginx.conf`, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(gatehouse(['check', '--config', out]).code, 0);
  assertEveryLineHasItsSource(out);
  const site = siteFile(out, 'chat.example.test');
  assert.deepEqual(site.tls, { acme: true });
  assert.deepEqual(site.upstreams.chat, {
    servers: ['http://127.0.0.1:9001', 'http://127.0.0.1:9002'],
    keepalive: 32,
    fail_timeout: '30s',
  });
  assert.deepEqual(site.deny_paths, ['(?i:/\\.(git|env))']);
  assert.deepEqual(site.routes[1], { path: '/static/', root: '/srv/chat', index: ['index.html'] });
  assert.equal(site.auth, undefined);
  const main = parseTomlSource(fs.readFileSync(path.join(out, 'gatehouse.toml'), 'utf8')).value as Record<string, any>;
  assert.deepEqual(main.https.listen, ['[::]:443', '0.0.0.0:443']);
  assert.deepEqual(main.http.listen, ['0.0.0.0:80', '[::]:80']);
  assert.equal(main.acme.terms_of_service_agreed, true);
  assert.equal(main.workers, 2);
  assert.deepEqual(main.proxy, { max_body_size: '2m', read_timeout: '120s' });
  assert.match(
    fs.readFileSync(path.join(out, 'gatehouse.toml'), 'utf8'),
    /map \$http_upgrade \$connection_upgrade: the WebSocket Connection map/,
  );
});

test('several server blocks through include globs, two oauth2-proxy instances, and the same as nginx -T output', () => {
  const dir = fixtureCopy('multi-site');
  const cfgs = [`${dir}/in/oauth2-proxy-grafana.cfg`, `${dir}/in/oauth2-proxy-wiki.cfg`];
  const out = path.join(dir, 'out');
  const r = gatehouse(['import', `${dir}/in/nginx.conf`, ...cfgs, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(gatehouse(['check', '--config', out]).code, 0);
  assertEveryLineHasItsSource(out);
  assert.deepEqual(fs.readdirSync(path.join(out, 'sites')).sort(), [
    'docs.example.test.toml',
    'grafana.example.test.toml',
    'wiki.example.test.toml',
  ]);
  const grafana = siteFile(out, 'grafana.example.test');
  assert.equal(grafana.auth.client_id, 'grafana');
  assert.deepEqual(grafana.auth.skip_auth_routes, ['^/public/']);
  assert.deepEqual(grafana.auth.api_routes, ['^/api/live/']);
  assert.deepEqual(grafana.upstreams.grafana, { servers: ['http://127.0.0.1:3000'], keepalive: 16 });
  const wiki = siteFile(out, 'wiki.example.test');
  assert.equal(wiki.auth.client_id, 'wiki');
  assert.equal(wiki.auth.cookie_expire, '12h0m0s');
  assert.deepEqual(wiki.server_names, ['wiki.example.test', 'www.wiki.example.test']);
  assert.deepEqual(wiki.routes[0], {
    path: '/',
    upstream: 'http://127.0.0.1:8081',
    max_body_size: '50m',
    read_timeout: '300s',
  });
  assert.deepEqual(wiki.auth.skip_auth_routes, ['^/assets/']);
  const docs = siteFile(out, 'docs.example.test');
  assert.deepEqual(docs.routes, [
    { path: '/', root: '/srv/docs', index: ['index.html'] },
    { path: '/old/', status: 410 },
  ]);
  const main = parseTomlSource(fs.readFileSync(path.join(out, 'gatehouse.toml'), 'utf8')).value as Record<string, any>;
  assert.deepEqual(main.proxy, {
    trusted_proxies: ['10.0.0.0/8'],
    connect_timeout: '5s',
    send_timeout: '60s',
    body_timeout: '30s',
  });
  const written = fs.readFileSync(path.join(out, 'sites/grafana.example.test.toml'), 'utf8');
  assert.match(
    written,
    /^upstream = "grafana"  # from .*\/in\/sites-enabled\/grafana\.example\.test:30$/m,
    'lines of included files',
  );

  // nginx -T prints every file after a "# configuration file PATH:" line; includes are looked up among them.
  const files = [
    'nginx.conf',
    'mime.types',
    'conf.d/proxy.conf',
    'conf.d/ssl.conf',
    ...fs.readdirSync(`${dir}/in/sites-enabled`).map((f) => `sites-enabled/${f}`),
  ];
  const dump = [
    'nginx: the configuration file /etc/nginx/nginx.conf syntax is ok',
    'nginx: configuration file /etc/nginx/nginx.conf test is successful',
    ...files.flatMap((f) => [`# configuration file /etc/nginx/${f}:`, fs.readFileSync(`${dir}/in/${f}`, 'utf8')]),
  ].join('\n');
  fs.writeFileSync(`${dir}/nginx-T.txt`, dump);
  const fromDump = gatehouse(['import', `${dir}/nginx-T.txt`, ...cfgs, '--out', `${dir}/out-T`]);
  assert.equal(fromDump.code, 0, fromDump.stderr);
  const strip = (text: string) => text.replace(/# .*$/gm, '');
  for (const f of ['gatehouse.toml', 'sites/grafana.example.test.toml', 'sites/wiki.example.test.toml'])
    assert.equal(strip(fs.readFileSync(`${dir}/out-T/${f}`, 'utf8')), strip(fs.readFileSync(`${out}/${f}`, 'utf8')), f);
  assert.match(
    fs.readFileSync(`${dir}/out-T/sites/grafana.example.test.toml`, 'utf8'),
    /^upstream = "grafana"  # from \/etc\/nginx\/sites-enabled\/grafana\.example\.test:30$/m,
  );

  // And what Debian's nginx itself prints for this configuration.
  fs.mkdirSync(`${dir}/in/logs`);
  const real = spawnSync(
    NGINX,
    ['-T', '-p', `${dir}/in`, '-c', `${dir}/in/nginx.conf`, '-e', `${dir}/in/logs/error.log`],
    { encoding: 'utf8' },
  );
  assert.equal(real.status, 0, `${NGINX} -T: ${real.error ?? real.stderr} (npm run setup installs nginx)`);
  fs.writeFileSync(`${dir}/nginx-T-real.txt`, real.stdout);
  const fromReal = gatehouse(['import', `${dir}/nginx-T-real.txt`, ...cfgs, '--out', `${dir}/out-real`]);
  assert.equal(fromReal.code, 0, fromReal.stderr);
  for (const f of ['gatehouse.toml', 'sites/grafana.example.test.toml', 'sites/wiki.example.test.toml'])
    assert.equal(
      fs.readFileSync(`${dir}/out-real/${f}`, 'utf8').replace(/nginx-T-real\.txt/, 'nginx.conf'),
      fs.readFileSync(`${out}/${f}`, 'utf8'),
      f,
    );
});

test('oauth2-proxy sessions in Redis → [store] backend = "redis"; gatehouse check accepts it without connecting to Redis', async (t) => {
  // A listener where the Redis URL points: neither import (which checks) nor check may connect to it.
  const connections: net.Socket[] = [];
  const redis = net.createServer((socket) => connections.push(socket.destroy()));
  await new Promise<void>((resolve) => redis.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => redis.close(() => resolve())));
  const port = (redis.address() as net.AddressInfo).port;
  const dir = fixtureCopy('redis');
  const cfg = `${dir}/in/oauth2-proxy.cfg`;
  fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace('127.0.0.1:6379', `127.0.0.1:${port}`));
  const out = path.join(dir, 'out');
  const r = gatehouse(['import', `${dir}/in/nginx.conf`, cfg, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /gatehouse check: configuration is valid/);
  const check = gatehouse(['check', '--config', out]);
  assert.equal(check.code, 0, check.stderr);
  assertEveryLineHasItsSource(out);
  const main = parseTomlSource(fs.readFileSync(path.join(out, 'gatehouse.toml'), 'utf8')).value as Record<string, any>;
  assert.deepEqual(main.store, {
    backend: 'redis',
    url: `redis://127.0.0.1:${port}/0`,
    password: '${file:secrets/store.password}',
    encryption_key: '${file:secrets/store.encryption_key}',
  });
  assert.equal(fs.readFileSync(path.join(out, 'secrets/store.password'), 'utf8'), 'redis-password\n');
  const key = path.join(out, 'secrets/store.encryption_key');
  assert.equal(Buffer.from(fs.readFileSync(key, 'utf8').trim(), 'base64').length, 32);
  for (const file of ['secrets/store.password', 'secrets/store.encryption_key'])
    assert.equal(fs.statSync(path.join(out, file)).mode & 0o777, 0o600, file);
  assert.deepEqual(siteFile(out, 'app.example.test').tls, { acme: true });
  // A connection the children made would be in the accept queue by now: let the loop take it.
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(connections.length, 0, 'import and check did not connect to Redis');
});

test('exit codes: refusals exit 1 and write nothing unless --allow-partial; malformed input exits 2; --out is never half-written', () => {
  const dir = fixtureCopy('reference');
  const nginx = `${dir}/in/nginx.conf`;
  const cfg = `${dir}/in/oauth2-proxy_code.refol.us.cfg`;
  const out = path.join(dir, 'out');
  fs.writeFileSync(nginx, fs.readFileSync(nginx, 'utf8').replace('http {', 'http {\ngzip on;'));
  fs.appendFileSync(cfg, 'banner = "Welcome"\n');
  let r = gatehouse(['import', nginx, cfg, '--out', out]);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    [
      `${nginx}:4: gzip: Gatehouse does not compress responses; an upstream’s compressed answer passes through`,
      `${cfg}:19: banner: Gatehouse's own pages are not customizable`,
      '2 directives or options without an equivalent: nothing written (--allow-partial writes the rest)',
      '',
    ].join('\n'),
  );
  assert.equal(fs.existsSync(out), false);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['certs', 'in'], 'no staging folder left behind');

  r = gatehouse(['import', nginx, cfg, '--out', out, '--allow-partial']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /configuration is valid; 2 left out/);
  assert.equal(gatehouse(['check', '--config', out]).code, 0);

  // A non-empty --out is refused without --force; with it, the folder is replaced whole.
  fs.writeFileSync(path.join(out, 'sites/old.example.test.toml'), 'server_names = ["old.example.test"]\n');
  r = gatehouse(['import', nginx, cfg, '--out', out, '--allow-partial']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /is not empty: nothing written \(--force replaces it\)/);
  assert.ok(fs.existsSync(path.join(out, 'sites/old.example.test.toml')));
  r = gatehouse(['import', nginx, cfg, '--out', out, '--allow-partial', '--force']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(fs.readdirSync(path.join(out, 'sites')), ['code.refol.us.toml']);

  // Malformed nginx: the line, exit 2, nothing written.
  fs.writeFileSync(nginx, 'events {}\nhttp {\n  server {\n    listen 443 ssl\n    server_name a.test;\n  }\n}\n');
  r = gatehouse(['import', nginx, cfg, '--out', `${dir}/out2`]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `${nginx}:4: "listen" is not terminated by ";"\nnothing written\n`);
  assert.equal(fs.existsSync(`${dir}/out2`), false);

  // A result gatehouse check refuses (here: a certificate that is not there) is not written either.
  const reference = fixtureCopy('reference');
  fs.rmSync(path.join(reference, 'certs'), { recursive: true });
  r = gatehouse([
    'import',
    `${reference}/in/nginx.conf`,
    `${reference}/in/oauth2-proxy_code.refol.us.cfg`,
    '--out',
    `${reference}/out`,
  ]);
  assert.equal(r.code, 2);
  assert.match(
    r.stderr,
    new RegExp(`^${reference}/out/sites/code\\.refol\\.us\\.toml:\\d+: tls\\.cert: cannot read .*ENOENT$`, 'm'),
  );
  assert.match(r.stderr, /gatehouse check refuses the result \(2 problems\): nothing written/);
  assert.deepEqual(fs.readdirSync(reference).sort(), ['in']);

  assert.equal(gatehouse(['import', nginx]).code, 64, 'no --out');
});
