import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../../src/config/load.ts';
import { ConfigError, type ConfigProblem } from '../../../src/config/problems.ts';
import { createTestCa } from '../../harness/pki.ts';
import { writeConfig } from '../../harness/gatehouse.ts';

const ca = createTestCa();
const leaf = ca.issue(['a.test']);
const MAIN = path.resolve(import.meta.dirname, '../../../src/main.ts');

function problemsOf(dir: string, env: NodeJS.ProcessEnv = {}): ConfigProblem[] {
  try {
    loadConfig(dir, env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail('configuration was accepted');
}

/** The example's [auth] takes its secrets from the environment, as a real deployment would. */
const EXAMPLE_ENV = {
  CODE_TENANT_ID: '3f6b2d1e-8c4a-4e7b-9d2f-0a1b2c3d4e5f',
  CODE_CLIENT_ID: '6cb04018-a3f5-46a7-b995-940c78f5aef3',
  CODE_CLIENT_SECRET: 'client-secret',
  CODE_COOKIE_SECRET: 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=',
};

function gatehouse(...args: string[]) {
  return spawnSync(process.execPath, [MAIN, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, ...EXAMPLE_ENV },
  });
}

test('the documented example config (code.refol.us) is valid once its certificate paths exist', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-example-'));
  fs.cpSync(path.resolve(import.meta.dirname, '../../../config'), dir, { recursive: true });
  const site = path.join(dir, 'sites', 'code.refol.us.toml');
  const refol = ca.issue(['code.refol.us']);
  fs.writeFileSync(
    site,
    fs
      .readFileSync(site, 'utf8')
      .replace('/data/certs/code.refol.us/fullchain.pem', refol.certFile)
      .replace('/data/certs/code.refol.us/privkey.pem', refol.keyFile),
  );
  const config = loadConfig(dir, EXAMPLE_ENV);
  assert.equal(config.sites[0]!.auth?.provider, 'entra-id');
  const route = config.sites[0]!.routes[0]!;
  assert.deepEqual(config.sites[0]!.serverNames, ['code.refol.us']);
  assert.equal(route.maxBodySize, 10 * 1024 * 1024);
  assert.equal(route.readTimeoutMs, 90_000);
  assert.equal(route.requestBuffering, false);
  assert.ok(config.sites[0]!.denyPaths[0]!.test('/.htaccess'));
  assert.ok(Object.isFrozen(config.sites[0]!.routes));
  const run = gatehouse('check', '--config', dir);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /configuration is valid \(1 site: code\.refol\.us\)/);
});

test('every problem is reported at once, each with file, line and key, and check exits 2', () => {
  const dir = writeConfig({
    main: '[log]\nlevel = "loud"\n',
    sites: {
      a: `server_names = ["a.test", "shared.test"]
colour = "blue"

[tls]
cert = "${leaf.certFile}"
key = "${leaf.keyFile}"

[[routes]]
path = "/"
upstream = "ftp://files.example"
max_body_size = "lots"
`,
      b: `server_names = ["b.test", "shared.test"]

[tls]
cert = "/nonexistent/fullchain.pem"
key = "${leaf.keyFile}"

[[routes]]
path = "/"
upstream = "missing-group"
read_timeout = true
`,
    },
  });
  // The main file, the site files' types, the cross-file and the file-system checks: all in one run.
  const problems = problemsOf(dir);
  assert.deepEqual(
    problems.map((p) => `${path.basename(p.file)}:${p.line}:${p.key}`).sort(),
    [
      'gatehouse.toml:4:log.level',
      'a.toml:11:routes[0].max_body_size',
      'a.toml:2:colour',
      'a.toml:10:routes[0].upstream',
      'b.toml:10:routes[0].read_timeout',
      'b.toml:1:server_names[1]',
      'b.toml:4:tls.cert',
      'b.toml:9:routes[0].upstream',
    ].sort(),
  );
  const second = problems;
  assert.match(
    second.find((p) => p.key === 'server_names[1]')!.message,
    /"shared\.test" is already served by .*a\.toml:1/,
  );
  assert.match(second.find((p) => p.key === 'tls.cert')!.message, /cannot read \/nonexistent\/fullchain\.pem: ENOENT/);

  const run = gatehouse('check', '--config', dir);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /8 configuration errors/);
  assert.match(run.stderr, /b\.toml:4: tls\.cert: cannot read/);
  const serve = gatehouse('serve', '--config', dir);
  assert.equal(serve.status, 2, 'serve refuses to start on an invalid configuration');
});

test('TOML syntax errors name the line', () => {
  const dir = writeConfig({ sites: { a: 'server_names = ["a.test"]\n\ncolour = "blue\n[tls]\n' } });
  const [problem] = problemsOf(dir);
  assert.equal(path.basename(problem!.file), 'a.toml');
  assert.equal(problem!.line, 3);
  assert.match(problem!.message, /TOML syntax/);
});

test('secrets come from ${env:NAME} and ${file:PATH}; a missing one is an error at its line', () => {
  fs.writeFileSync(path.join(ca.dir, 'upstream.txt'), 'http://127.0.0.1:9\n');
  const site = (upstream: string) =>
    `server_names = ["a.test"]\n[tls]\ncert = "${leaf.certFile}"\nkey = "\${env:KEY_FILE}"\n[[routes]]\npath = "/"\nupstream = "${upstream}"\n`;
  const ok = loadConfig(writeConfig({ sites: { a: site(`\${file:${path.join(ca.dir, 'upstream.txt')}}`) } }), {
    KEY_FILE: leaf.keyFile,
  });
  assert.deepEqual(Object.keys(ok.sites[0]!.upstreams), ['http://127.0.0.1:9']);
  const problems = problemsOf(writeConfig({ sites: { a: site('http://127.0.0.1:9') } }), {});
  assert.deepEqual(
    problems.map((p) => [p.line, p.key, p.message]),
    [[4, 'tls.key', 'environment variable KEY_FILE is not set']],
  );
});

test('a key that does not belong to the certificate, a default_site nobody serves, and an empty sites folder are refused', () => {
  const other = ca.issue(['b.test']);
  const mismatched = writeConfig({
    main: '[https]\ndefault_site = "nobody.test"\n',
    sites: {
      a: `server_names = ["a.test"]\n[tls]\ncert = "${leaf.certFile}"\nkey = "${other.keyFile}"\n[[routes]]\npath = "/"\nstatus = 204\n`,
    },
  });
  assert.deepEqual(
    problemsOf(mismatched).map((p) => p.key),
    ['tls.key'],
  );
  const fixed = fs.readFileSync(path.join(mismatched, 'sites', 'a.toml'), 'utf8').replace(other.keyFile, leaf.keyFile);
  fs.writeFileSync(path.join(mismatched, 'sites', 'a.toml'), fixed);
  assert.deepEqual(
    problemsOf(mismatched).map((p) => [p.line, p.key]),
    [[2, 'https.default_site']],
  );
  const empty = writeConfig({ sites: {} });
  assert.match(problemsOf(empty)[0]!.message, /no site files/);
});

test('a route needs exactly one action, and listen addresses, CIDRs and names are checked', () => {
  const dir = writeConfig({
    main: '[proxy]\ntrusted_proxies = ["10.0.0.0/33"]\n',
    sites: {
      a: `server_names = ["a.test", "bad name"]\n[tls]\ncert = "${leaf.certFile}"\nkey = "${leaf.keyFile}"\n[[routes]]\npath = "/"\nupstream = "http://x"\nroot = "/srv"\n`,
    },
  });
  assert.deepEqual(
    problemsOf(dir).map((p) => p.key),
    ['proxy.trusted_proxies[0]', 'server_names[1]'],
  );
  fs.writeFileSync(path.join(dir, 'gatehouse.toml'), '[https]\nlisten = ["127.0.0.1:0"]\n');
  assert.deepEqual(
    problemsOf(dir).map((p) => [p.line, p.key]),
    [[1, 'server_names[1]']],
  );
  fs.writeFileSync(
    path.join(dir, 'sites', 'a.toml'),
    fs.readFileSync(path.join(dir, 'sites', 'a.toml'), 'utf8').replace(', "bad name"', ''),
  );
  const [both] = problemsOf(dir);
  assert.equal(both!.key, 'routes[0]');
  assert.match(both!.message, /exactly one of upstream, root, redirect or status \(found upstream, root\)/);
});

test('an upstream group ca must be a readable PEM certificate; a valid one is loaded for its https:// servers', () => {
  const site = (ca: string) =>
    `server_names = ["a.test"]\n[tls]\ncert = "${leaf.certFile}"\nkey = "${leaf.keyFile}"\n[upstreams.app]\nservers = ["https://localhost:8443"]\nca = ${JSON.stringify(ca)}\n[[routes]]\npath = "/"\nupstream = "app"\n`;
  const missing = writeConfig({ sites: { a: site('/nonexistent/upstream-ca.pem') } });
  const [problem] = problemsOf(missing);
  assert.equal(problem!.key, 'upstreams.app.ca');
  assert.match(problem!.message, /cannot read \/nonexistent\/upstream-ca\.pem: ENOENT/);
  const notPem = writeConfig({ sites: { a: site(leaf.keyFile) } });
  assert.match(problemsOf(notPem)[0]!.message, /is not a PEM certificate/);
  const good = writeConfig({ sites: { a: site(ca.caFile) } });
  const config = loadConfig(good);
  assert.equal(config.sites[0]!.upstreams.app!.caPem, ca.caPem);
});
