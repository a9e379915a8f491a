import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../../src/config/load.ts';
import { ConfigError, type ConfigProblem } from '../../../src/config/problems.ts';
import { writeConfig } from '../../harness/gatehouse.ts';
import { createTestCa } from '../../harness/pki.ts';

const ca = createTestCa();
const leaf = ca.issue(['a.test']);
const site = `server_names = ["a.test"]\n[tls]\ncert = "${leaf.certFile}"\nkey = "${leaf.keyFile}"\n[[routes]]\npath = "/"\nstatus = 204\n`;

function problemsOf(main: string, env: NodeJS.ProcessEnv = {}): ConfigProblem[] {
  try {
    loadConfig(writeConfig({ main, sites: { a: site } }), env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail('configuration was accepted');
}

test('[store] defaults to the local backend with its documented figures', () => {
  const config = loadConfig(writeConfig({ sites: { a: site } }), {});
  assert.deepEqual(config.store, { backend: 'local', prefix: 'gatehouse:', commandTimeoutMs: 500, graceMs: 300_000 });
});

test('[store] backend = "redis": url, password from ${file:…}, prefix, timeouts and Sentinel are read', () => {
  fs.writeFileSync(path.join(ca.dir, 'redis-password'), 'p@ss:word\n');
  const dir = writeConfig({
    main: `[store]\nbackend = "redis"\nurl = "rediss://cache.internal:6380/2"\npassword = "\${file:${path.join(ca.dir, 'redis-password')}}"\nca = "${ca.caFile}"\nprefix = "gh1:"\ncommand_timeout = "250ms"\ngrace = "2m"\n`,
    sites: { a: site },
  });
  const config = loadConfig(dir, {});
  assert.equal(config.store.backend, 'redis');
  assert.ok(config.store.backend === 'redis');
  assert.deepEqual(
    { ...config.store.redis, caPem: config.store.redis.caPem?.slice(0, 27) },
    {
      host: 'cache.internal',
      port: 6380,
      db: 2,
      password: 'p@ss:word',
      tls: true,
      caPem: '-----BEGIN CERTIFICATE-----',
      sentinels: [],
    },
  );
  assert.equal(config.store.prefix, 'gh1:');
  assert.equal(config.store.commandTimeoutMs, 250);
  assert.equal(config.store.graceMs, 120_000);
  const sentinel = loadConfig(
    writeConfig({
      main: '[store]\nbackend = "redis"\nsentinels = ["10.0.0.1:26379", "[::1]:26380"]\nmaster_name = "main"\n',
      sites: { a: site },
    }),
    {},
  );
  assert.ok(sentinel.store.backend === 'redis');
  assert.deepEqual(sentinel.store.redis.sentinels, [
    { host: '10.0.0.1', port: 26379 },
    { host: '::1', port: 26380 },
  ]);
  assert.equal(sentinel.store.redis.masterName, 'main');
});

test('[store] problems name the file, line and key', () => {
  const problems = problemsOf(
    '[store]\nbackend = "redis"\nurl = "http://cache:6379"\ncommand_timeout = "soon"\nsentinels = ["10.0.0.1"]\n',
  );
  assert.deepEqual(
    problems.map((p) => [path.basename(p.file), p.line, p.key]).sort((a, b) => Number(a[1]) - Number(b[1])),
    [
      ['gatehouse.toml', 5, 'store.url'],
      ['gatehouse.toml', 6, 'store.command_timeout'],
      ['gatehouse.toml', 7, 'store.sentinels[0]'],
    ],
  );
  assert.deepEqual(
    problemsOf('[store]\nbackend = "redis"\n').map((p) => [p.key, p.message]),
    [['store.url', 'backend = "redis" needs url = "redis://host:6379" (or sentinels + master_name)']],
  );
  assert.deepEqual(
    problemsOf('[store]\nbackend = "redis"\nsentinels = ["10.0.0.1:26379"]\n').map((p) => p.key),
    ['store.master_name'],
  );
  assert.deepEqual(
    problemsOf('[store]\nurl = "redis://cache:6379"\n').map((p) => [p.key, p.message]),
    [['store.url', 'url is for backend = "redis"']],
  );
  assert.deepEqual(
    problemsOf('[store]\nbackend = "redis"\nurl = "redis://cache:6379"\nca = "nowhere.pem"\n').map((p) => p.key),
    ['store.ca', 'store.ca'],
  );
});

test('[store] encryption_key: 32 bytes, for backend = "redis", required there when a site uses ACME', () => {
  const key = Buffer.alloc(32, 7);
  const redis = '[store]\nbackend = "redis"\nurl = "redis://cache:6379"\n';
  const withKey = loadConfig(
    writeConfig({ main: `${redis}encryption_key = "${key.toString('base64')}"\n`, sites: { a: site } }),
    {},
  );
  assert.ok(withKey.store.backend === 'redis');
  assert.deepEqual(withKey.store.encryptionKey, key);
  assert.deepEqual(
    problemsOf(`${redis}encryption_key = "${Buffer.alloc(31).toString('base64')}"\n`).map((p) => [p.key, p.message]),
    [['store.encryption_key', 'must be 32 bytes, raw or base64 encoded (openssl rand -base64 32)']],
  );
  assert.deepEqual(
    problemsOf(`[store]\nencryption_key = "${key.toString('base64')}"\n`).map((p) => p.key),
    ['store.encryption_key'],
  );
  // An ACME site's private keys would go to Redis: without a key, the configuration is refused (fail closed).
  const acmeSite = 'server_names = ["a.test"]\n[tls]\nacme = true\n[[routes]]\npath = "/"\nstatus = 204\n';
  const acme = '[acme]\nterms_of_service_agreed = true\n';
  assert.throws(
    () => loadConfig(writeConfig({ main: `${acme}${redis}`, sites: { a: acmeSite } }), {}),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.problems.some((p) => p.key === 'store.encryption_key' && /keeps its private keys in Redis/.test(p.message)),
  );
  const ok = loadConfig(
    writeConfig({ main: `${acme}${redis}encryption_key = "${key.toString('base64')}"\n`, sites: { a: acmeSite } }),
    {},
  );
  assert.equal(ok.store.backend, 'redis');
});
