// oauth2-proxy's Redis session options → gatehouse.toml [store]: each line with its "# from file:line", the password
// in a 0600 file, what has no home refused with the reason, and one [store] for the whole process.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parseTomlSource } from '../../../src/config/toml-source.ts';
import { parseText } from '../../../src/import/nginx-parse.ts';
import { readOAuth2ProxyConfig } from '../../../src/import/oauth2-proxy.ts';
import { formatSource } from '../../../src/import/toml-writer.ts';
import { translate } from '../../../src/import/translate.ts';

const CFG = [
  'provider = "oidc"',
  'oidc_issuer_url = "https://id.example.test"',
  'client_id = "app"',
  'client_secret = "s3cret"',
  'cookie_secret = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="',
  'email_domains = ["example.test"]',
];

function server(name: string, cert: string, port: number): string {
  return [
    'server {',
    `listen 443 ssl; server_name ${name};`,
    `ssl_certificate ${cert}/fullchain.pem; ssl_certificate_key ${cert}/privkey.pem;`,
    `auth_request /oauth2/auth; location = /oauth2/auth { proxy_pass http://127.0.0.1:${port}; }`,
    'location / { proxy_pass http://127.0.0.1:8080; }',
    '}',
  ].join('\n');
}

/** One site per .cfg (a.example.test, b.example.test, …), each .cfg listening on its own port. */
function run(cfgLines: string[][], certs = '/certs') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-redis-import-'));
  const cfgs = cfgLines.map((lines, i) => {
    const file = path.join(dir, `${i}.cfg`);
    fs.writeFileSync(file, [...CFG, `http_address = "127.0.0.1:${4180 + i}"`, ...lines].join('\n'));
    return readOAuth2ProxyConfig(file, {});
  });
  const servers = cfgLines.map((_, i) => server(`${'ab'[i]}.example.test`, certs, 4180 + i)).join('\n');
  const result = translate(
    { file: 'nginx.conf', directives: parseText(`http {\n${servers}\n}\n`, 'nginx.conf') },
    cfgs,
    {
      prefix: '/etc/nginx',
    },
  );
  const gatehouse = result.files.find((f) => f.name === 'gatehouse.toml')!.text;
  const store = (parseTomlSource(gatehouse).value as { store?: Record<string, unknown> }).store;
  const strip = (s: string) => s.replaceAll(dir + '/', '');
  const refused = result.refused.map((f) => strip(`${formatSource(f.from)}: ${f.name}: ${f.why}`));
  const implied = result.implied.map((f) => strip(`${formatSource(f.from)}: ${f.name}: ${f.why}`));
  return { result, gatehouse: strip(gatehouse), store, refused, implied };
}

test('session_store_type = "redis": [store] backend and url, the password in a 0600 file, each line from file:line', () => {
  const { result, gatehouse, store, refused } = run([
    [
      'session_store_type = "redis"',
      'redis_connection_url = "rediss://:in-url@redis.internal:6380/2"',
      'redis_username = "gatehouse"',
      'redis_ca_path = "/etc/ssl/redis-ca.pem"',
    ],
  ]);
  assert.deepEqual(refused, []);
  assert.deepEqual(store, {
    backend: 'redis',
    url: 'rediss://gatehouse@redis.internal:6380/2',
    password: '${file:secrets/store.password}',
    ca: '/etc/ssl/redis-ca.pem',
  });
  const password = result.files.find((f) => f.name === 'secrets/store.password')!;
  assert.equal(password.text, 'in-url\n', 'the password of the URL, out of gatehouse.toml');
  assert.equal(password.mode, 0o600);
  assert.ok(!gatehouse.includes('in-url'), 'no password in gatehouse.toml');
  assert.match(gatehouse, /^backend = "redis" {2}# from 0\.cfg:8;/m);
  assert.match(gatehouse, /^url = "rediss:\/\/gatehouse@redis\.internal:6380\/2" {2}# from 0\.cfg:9, 0\.cfg:10;/m);
  assert.match(gatehouse, /^password = "\$\{file:secrets\/store\.password\}" {2}# from 0\.cfg:9;/m);
  assert.match(gatehouse, /^ca = "\/etc\/ssl\/redis-ca\.pem" {2}# from 0\.cfg:11;/m);
  assert.ok(!result.files.some((f) => f.name.includes('encryption_key')), 'no ACME: no encryption key');
});

test('redis_password wins over one in the URL; Sentinel → sentinels + master_name; "cookie" needs nothing', () => {
  const sentinel = run([
    [
      'session_store_type = "redis"',
      'redis_connection_url = "redis://ignored:6379"',
      'redis_password = "p4ss"',
      'redis_use_sentinel = true',
      'redis_sentinel_connection_urls = ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"]',
      'redis_sentinel_master_name = "mymaster"',
    ],
  ]);
  assert.deepEqual(sentinel.refused, []);
  assert.deepEqual(sentinel.store, {
    backend: 'redis',
    sentinels: ['10.0.0.1:26379', '10.0.0.2:26379'],
    master_name: 'mymaster',
    password: '${file:secrets/store.password}',
  });
  assert.equal(sentinel.result.files.find((f) => f.name === 'secrets/store.password')!.text, 'p4ss\n');
  assert.ok(
    sentinel.implied.includes('0.cfg:9: redis_connection_url: oauth2-proxy ignores it with redis_use_sentinel = true'),
  );

  const cookie = run([['session_store_type = "cookie"', 'redis_connection_url = "redis://r:6379"']]);
  assert.deepEqual(cookie.refused, []);
  assert.equal(cookie.store, undefined, 'no [store]: the local store');
  assert.ok(cookie.implied.some((i) => i.startsWith('0.cfg:8: session_store_type: sessions are server-side')));
  assert.ok(
    cookie.implied.includes(
      '0.cfg:9: redis_connection_url: oauth2-proxy reads it only with session_store_type = "redis"',
    ),
  );
});

test('what [store] has no home for is refused with the reason', () => {
  const { refused } = run([
    [
      'session_store_type = "redis"',
      'redis_use_cluster = true',
      'redis_cluster_connection_urls = ["redis://10.0.0.1:7000"]',
      'redis_insecure_skip_tls_verify = true',
      'redis_connection_idle_timeout = 14',
      'redis_sentinel_password = "x"',
    ],
  ]);
  assert.deepEqual(refused, [
    '0.cfg:8: session_store_type: session_store_type = "redis" needs redis_connection_url (or redis_use_sentinel)',
    '0.cfg:9: redis_use_cluster: Redis Cluster is not supported: gatehouse.toml [store] takes one Redis (url) or Redis Sentinel (sentinels + master_name)',
    '0.cfg:10: redis_cluster_connection_urls: Redis Cluster is not supported: gatehouse.toml [store] takes one Redis (url) or Redis Sentinel (sentinels + master_name)',
    '0.cfg:11: redis_insecure_skip_tls_verify: TLS to Redis is always verified: give its CA as gatehouse.toml [store] ca (oauth2-proxy redis_ca_path)',
    '0.cfg:12: redis_connection_idle_timeout: Gatehouse keeps no pool of idle Redis connections: one command connection, PINGed every second, and one pub/sub connection, each reopened by itself if Redis closes it',
    '0.cfg:13: redis_sentinel_password: Sentinels that ask for a password are not supported: gatehouse.toml [store] password is the Redis server’s',
  ]);
  const sentinelUser = run([
    [
      'session_store_type = "redis"',
      'redis_use_sentinel = true',
      'redis_sentinel_connection_urls = ["redis://10.0.0.1:26379"]',
      'redis_sentinel_master_name = "m"',
      'redis_username = "u"',
      'redis_connection_url = "unix:///run/redis.sock"',
    ],
  ]);
  assert.deepEqual(sentinelUser.refused, [
    '0.cfg:12: redis_username: with Sentinel, gatehouse.toml [store] has no Redis user (ACL users go in url)',
  ]);
  const unix = run([['session_store_type = "redis"', 'redis_connection_url = "unix:///run/redis.sock"']]);
  assert.deepEqual(unix.refused, [
    '0.cfg:9: redis_connection_url: Gatehouse connects to redis://host:port or rediss://host:port (no unix sockets)',
  ]);
});

test('the store is process-wide: two .cfg files with other Redis settings are refused; the same ones are one [store]', () => {
  const redis = (url: string) => ['session_store_type = "redis"', `redis_connection_url = "${url}"`];
  const differ = run([redis('redis://r1:6379'), redis('redis://r2:6379')]);
  assert.deepEqual(differ.refused, [
    '1.cfg:8: session_store_type: the store is process-wide and 0.cfg:8 set other Redis settings: one [store] serves every site',
  ]);
  const same = run([redis('redis://r1:6379'), redis('redis://r1:6379')]);
  assert.deepEqual(same.refused, []);
  assert.deepEqual(same.store, { backend: 'redis', url: 'redis://r1:6379' });
});

test('Redis + a certbot certificate (acme = true): an encryption_key is generated into secrets/ (32 bytes, 0600)', () => {
  const { result, store, refused } = run(
    [['session_store_type = "redis"', 'redis_connection_url = "redis://r:6379"']],
    '/etc/letsencrypt/live/a.example.test',
  );
  assert.deepEqual(refused, []);
  assert.equal(store!.encryption_key, '${file:secrets/store.encryption_key}');
  const key = result.files.find((f) => f.name === 'secrets/store.encryption_key')!;
  assert.equal(key.mode, 0o600);
  assert.equal(Buffer.from(key.text.trim(), 'base64').length, 32);
  const again = run(
    [['session_store_type = "redis"', 'redis_connection_url = "redis://r:6379"']],
    '/etc/letsencrypt/live/a.example.test',
  );
  assert.notEqual(again.result.files.find((f) => f.name === 'secrets/store.encryption_key')!.text, key.text);
});
