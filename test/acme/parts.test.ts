// The ACME parts on their own: ARI id and window (RFC 9773), renewal by ratio, storage checks, the lock,
// the HTTP-01 responder, and the configuration rules.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ariCertId, ariCertIdFrom, parseRenewalInfo, pickRenewalTime } from '../../src/acme/ari.ts';
import { ChallengeStore, createChallengeResponder } from '../../src/acme/challenges.ts';
import { tryLock } from '../../src/acme/lock.ts';
import { nextRenewal } from '../../src/acme/renewal-time.ts';
import { CertStorage, describe, renewalTimeByRatio, type CertInfo } from '../../src/acme/storage.ts';
import { loadConfig } from '../../src/config/load.ts';
import { ConfigError } from '../../src/config/problems.ts';
import { createSelfSigned } from '../../src/tls/self-signed.ts';
import { writeConfig } from '../harness/gatehouse-acme.ts';
import { selfSignedP256 } from '../harness/pki.ts';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-acme-'));
const DAY = 86_400_000;

test('ARI certificate id: the RFC 9773 §4.1 example and a real certificate', () => {
  assert.equal(
    ariCertIdFrom('69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4', '00:87:65:43:21'),
    'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE',
  );
  assert.equal(ariCertIdFrom('6988', '87654321'), 'aYg.AIdlQyE', 'a leading 00 is added when the top bit is set');
  assert.equal(ariCertIdFrom('6988', '0001'), 'aYg.AQ', 'and extra leading zeros are dropped');

  const dir = tmp();
  selfSignedP256(
    path.join(dir, 'k.pem'),
    path.join(dir, 'c.pem'),
    '/CN=ari.test',
    1,
    '-set_serial',
    '0x87654321',
    '-addext',
    'authorityKeyIdentifier=keyid:always',
  );
  const text = execFileSync(
    'openssl',
    ['x509', '-in', path.join(dir, 'c.pem'), '-noout', '-ext', 'authorityKeyIdentifier'],
    { encoding: 'utf8' },
  );
  const keyId = /([0-9A-F]{2}(?::[0-9A-F]{2}){19})/.exec(text)![1]!;
  assert.equal(
    ariCertId(fs.readFileSync(path.join(dir, 'c.pem'), 'utf8')),
    `${Buffer.from(keyId.replaceAll(':', ''), 'hex').toString('base64url')}.AIdlQyE`,
  );
  fs.rmSync(dir, { recursive: true });
});

test('ARI window: parsed strictly, a random moment inside it is chosen', () => {
  const window = parseRenewalInfo({
    suggestedWindow: { start: '2026-01-02T00:00:00Z', end: '2026-01-03T00:00:00Z' },
    explanationURL: 'https://ca.example/why',
  });
  assert.equal(window.explanationUrl, 'https://ca.example/why');
  assert.equal(pickRenewalTime(window, () => 0).toISOString(), '2026-01-02T00:00:00.000Z');
  assert.equal(pickRenewalTime(window, () => 0.5).toISOString(), '2026-01-02T12:00:00.000Z');
  assert.throws(
    () => parseRenewalInfo({ suggestedWindow: { start: '2026-01-03T00:00:00Z', end: '2026-01-02T00:00:00Z' } }),
    /malformed/,
  );
  assert.throws(() => parseRenewalInfo({}), /malformed/);
});

test('renewal by ratio handles 90-, 45- and 6-day certificates; ARI is used when the directory offers it', async (t) => {
  const start = Date.parse('2026-01-01T00:00:00Z');
  const info = (days: number): CertInfo => ({
    names: ['a.test'],
    issuer: 'x',
    serial: '01',
    notBefore: new Date(start),
    notAfter: new Date(start + days * DAY),
  });
  assert.equal(renewalTimeByRatio(info(90), 1 / 3).getTime(), start + 60 * DAY);
  assert.equal(renewalTimeByRatio(info(45), 1 / 3).getTime(), start + 30 * DAY);
  assert.equal(renewalTimeByRatio(info(6), 1 / 3).getTime(), start + 4 * DAY);

  const pair = await createSelfSigned(['a.test']);
  const byRatio = await nextRenewal({ info: info(90), pair }, 1 / 3, {}, start, () => assert.fail());
  assert.equal(byRatio.source, 'ratio');

  // A CA with renewalInfo; the self-signed certificate has no AKI, so ARI fails and the ratio is the fallback.
  const seen: string[] = [];
  const ca = http.createServer((req, res) => {
    seen.push(req.url!);
    res
      .writeHead(200, { 'content-type': 'application/json', 'retry-after': '3600' })
      .end(JSON.stringify({ suggestedWindow: { start: '2026-02-01T00:00:00Z', end: '2026-02-02T00:00:00Z' } }));
  });
  await new Promise<void>((r) => ca.listen(0, '127.0.0.1', r));
  t.after(() => ca.close());
  const renewalInfo = `http://127.0.0.1:${(ca.address() as AddressInfo).port}/renewal-info`;
  const errors: string[] = [];
  const fallback = await nextRenewal({ info: info(90), pair }, 1 / 3, { renewalInfo }, start, (e) =>
    errors.push(e.message),
  );
  assert.equal(fallback.source, 'ratio');
  assert.match(errors[0]!, /Authority Key Identifier/);

  const dir = tmp();
  selfSignedP256(
    path.join(dir, 'k.pem'),
    path.join(dir, 'c.pem'),
    '/CN=a.test',
    90,
    '-addext',
    'subjectAltName=DNS:a.test',
    '-addext',
    'authorityKeyIdentifier=keyid:always',
  );
  const real = {
    certPem: fs.readFileSync(path.join(dir, 'c.pem'), 'utf8'),
    keyPem: fs.readFileSync(path.join(dir, 'k.pem'), 'utf8'),
  };
  fs.rmSync(dir, { recursive: true });
  const byAri = await nextRenewal({ info: describe(real), pair: real }, 1 / 3, { renewalInfo }, start, (e) =>
    assert.fail(e),
  );
  assert.equal(byAri.source, 'ari');
  assert.ok(
    byAri.at.getTime() >= Date.parse('2026-02-01T00:00:00Z') &&
      byAri.at.getTime() <= Date.parse('2026-02-02T00:00:00Z'),
  );
  assert.equal(byAri.until, start + 3_600_000, 'asks again after Retry-After');
  assert.equal(seen.at(-1), `/renewal-info/${ariCertId(real.certPem)}`);
});

test('storage: missing, valid (key 0600), truncated and mismatched files are told apart, nothing is deleted', async () => {
  const dir = tmp();
  const storage = new CertStorage(dir);
  assert.deepEqual(storage.read('a.test'), { state: 'missing' });
  const pair = await createSelfSigned(['a.test', 'www.a.test']);
  storage.write('a.test', pair, { domain: 'a.test', serial: 'x' });
  assert.equal(fs.statSync(path.join(dir, 'a.test', 'privkey.pem')).mode & 0o777, 0o600);
  const ok = storage.read('a.test');
  assert.equal(ok.state, 'ok');
  assert.deepEqual(ok.state === 'ok' && ok.info.names, ['a.test', 'www.a.test']);

  fs.writeFileSync(path.join(dir, 'a.test', 'fullchain.pem'), pair.certPem.slice(0, 200));
  const truncated = storage.read('a.test');
  assert.equal(truncated.state, 'corrupt');
  assert.match(truncated.state === 'corrupt' ? truncated.reason : '', /truncated/);
  fs.writeFileSync(path.join(dir, 'a.test', 'fullchain.pem'), (await createSelfSigned(['a.test'])).certPem);
  const mismatched = storage.read('a.test');
  assert.match(mismatched.state === 'corrupt' ? mismatched.reason : '', /does not belong/);
  assert.ok(fs.existsSync(path.join(dir, 'a.test', 'privkey.pem')));
  assert.throws(
    () => storage.write('a.test', { certPem: 'garbage', keyPem: pair.keyPem }, { domain: 'a.test' }),
    /no complete PEM/,
  );
  assert.equal(storage.readMeta('a.test')?.serial, 'x');
  fs.rmSync(dir, { recursive: true });
});

test('storage: one folder per issuance, current switched by one rename, the previous kept, older ones removed', async () => {
  const dir = tmp();
  const storage = new CertStorage(dir);
  const domainDir = path.join(dir, 'a.test');
  const serials: string[] = [];
  for (let i = 0; i < 3; i++) {
    const pair = await createSelfSigned(['a.test']);
    storage.write('a.test', pair, { domain: 'a.test' });
    const read = storage.read('a.test');
    assert.equal(read.state, 'ok');
    serials.push(read.state === 'ok' ? read.info.serial : '');
    assert.deepEqual(read.state === 'ok' && read.pair, pair);
  }
  const folders = fs.readdirSync(domainDir).filter((n) => /^\d{8}T\d{6}Z-/.test(n));
  assert.deepEqual(
    folders.map((n) => n.split('-')[1]).sort(),
    serials.slice(1).sort(),
    'the current and the previous pair only',
  );
  const current = fs.readlinkSync(path.join(domainDir, 'current'));
  assert.ok(current.endsWith(`-${serials[2]}`));
  assert.equal(fs.statSync(path.join(domainDir, current, 'privkey.pem')).mode & 0o777, 0o600);
  assert.equal(fs.readlinkSync(path.join(domainDir, 'privkey.pem')), 'current/privkey.pem');
  assert.deepEqual(
    fs.readdirSync(domainDir).filter((n) => n.startsWith('.')),
    [],
    'no temporary file left',
  );

  // The current pair damaged: the previous one is returned, with the reason.
  fs.writeFileSync(path.join(domainDir, current, 'privkey.pem'), '-----BEGIN PRIVATE KEY-----\n');
  const fallback = storage.read('a.test');
  assert.equal(fallback.state === 'ok' && fallback.info.serial, serials[1]);
  assert.match(fallback.state === 'ok' ? (fallback.problem ?? '') : '', /privkey\.pem is not a PEM private key/);
  fs.rmSync(dir, { recursive: true });
});

test('lock: exclusive, released, taken over from a dead process', () => {
  const dir = tmp();
  const release = tryLock(dir, 'a.test')!;
  assert.ok(release);
  assert.equal(tryLock(dir, 'a.test'), undefined);
  release();
  const again = tryLock(dir, 'a.test');
  assert.ok(again);
  again!();
  fs.writeFileSync(
    path.join(dir, 'locks', 'a.test.lock'),
    JSON.stringify({ pid: 2 ** 22 + 17, host: os.hostname(), since: new Date().toISOString() }),
  );
  const taken = tryLock(dir, 'a.test');
  assert.ok(taken, 'a lock whose process is gone is taken over');
  taken!();
  fs.rmSync(dir, { recursive: true });
});

test('HTTP-01 responder: any Host with a port, repeated validation, tokens shared through storage, unknown → 404', async (t) => {
  const dir = tmp();
  const store = new ChallengeStore(dir);
  const respond = createChallengeResponder(store);
  const server = http.createServer((req, res) => {
    if (!respond(req, res, 'req-1')) res.writeHead(299).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const port = (server.address() as AddressInfo).port;
  const get = (urlPath: string, host: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      http
        .get({ port, host: '127.0.0.1', path: urlPath, headers: { host } }, (res) => {
          let body = '';
          res
            .setEncoding('utf8')
            .on('data', (d: string) => (body += d))
            .on('end', () => resolve({ status: res.statusCode!, body }));
        })
        .on('error', reject);
    });
  store.add('tok_en-1', 'tok_en-1.thumb');
  new ChallengeStore(dir).add('other-process', 'other-process.thumb');
  for (let i = 0; i < 3; i++)
    assert.deepEqual(await get('/.well-known/acme-challenge/tok_en-1', 'app.test:5002'), {
      status: 200,
      body: 'tok_en-1.thumb',
    });
  assert.equal((await get('/.well-known/acme-challenge/other-process', 'www.app.test')).body, 'other-process.thumb');
  const unknown = await get('/.well-known/acme-challenge/nope', 'app.test');
  assert.equal(unknown.status, 404);
  assert.match(unknown.body, /ERR_ACME_UNKNOWN_TOKEN.*|req-1/);
  assert.equal((await get('/.well-known/acme-challenge/..%2f..%2fetc%2fpasswd', 'app.test')).status, 404);
  assert.equal((await get('/other', 'app.test')).status, 299, 'other paths are not ours');
  store.remove('tok_en-1');
  assert.equal((await get('/.well-known/acme-challenge/tok_en-1', 'app.test')).status, 404);
});

test('challenge tokens: a running order keeps its files fresh however long it takes; the sweep takes only stale ones', async (t) => {
  const dir = tmp();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const running = new ChallengeStore(dir, 400); // touched every 100 ms
  running.add('slow-ca', 'slow-ca.thumb');
  const file = path.join(dir, 'challenges', 'slow-ca');
  const hourAgo = new Date(Date.now() - 3_600_000);
  fs.utimesSync(file, hourAgo, hourAgo); // as if the CA had taken an hour so far
  const watcher = fs.watch(file);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the token file was never touched')), 30_000);
    watcher.once('change', () => {
      clearTimeout(timer);
      resolve();
    });
  }).finally(() => watcher.close());
  assert.ok(Date.now() - fs.statSync(file).mtimeMs < 60_000, 'touched by the running order');

  const other = new ChallengeStore(dir, 60_000); // another process sharing the storage
  fs.writeFileSync(path.join(dir, 'challenges', 'killed'), 'killed.thumb');
  fs.utimesSync(path.join(dir, 'challenges', 'killed'), hourAgo, hourAgo);
  assert.deepEqual(other.sweep(), ['killed']);
  assert.equal(other.get('slow-ca'), 'slow-ca.thumb', "the running order's token is kept");
  running.remove('slow-ca');
  assert.deepEqual(fs.readdirSync(path.join(dir, 'challenges')), []);

  // A process that exits mid-order (a stop signal) removes its tokens on the way out.
  const module = new URL('../../src/acme/challenges.ts', import.meta.url).href;
  execFileSync(process.execPath, [
    '--input-type=module',
    '-e',
    `import { ChallengeStore } from ${JSON.stringify(module)}; new ChallengeStore(${JSON.stringify(dir)}).add('exiting', 'exiting.thumb'); process.exit(0);`,
  ]);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'challenges')), []);
});

test('config: tls.acme rules with file, line and key; the challenge listener; named directories', (t) => {
  const site = (names: string, tls: string) =>
    `server_names = [${names}]\n\n[tls]\n${tls}\n\n[[routes]]\npath = "/"\nstatus = 204\n`;
  const problems = (main: string, sites: Record<string, string>) => {
    const dir = writeConfig(main, sites);
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    try {
      loadConfig(dir);
      return [];
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return error.problems.map((p) => `${path.basename(p.file)}:${p.line}: ${p.key}: ${p.message}`);
    }
  };
  const agreed = '[acme]\nterms_of_service_agreed = true\n';
  assert.deepEqual(problems(agreed, { wild: site('"a.test", "*.a.test"', 'acme = true') }), [
    'wild.toml:1: server_names[1]: "*.a.test" is a wildcard, and ACME HTTP-01 cannot prove wildcards: list the names one by one, or use cert and key files from a DNS-01 client',
  ]);
  assert.deepEqual(problems(agreed, { both: site('"a.test"', 'acme = true\ncert = "c.pem"') }), [
    'both.toml:4: tls.acme: give either acme = true or cert and key, not both',
  ]);
  assert.deepEqual(problems(agreed, { none: site('"a.test"', 'key = "k.pem"') }), [
    'none.toml:3: tls.cert: missing: a site needs cert and key files, or acme = true',
  ]);
  assert.match(
    problems('[acme]\ndirectory = "staging"\n', { a: site('"a.test"', 'acme = true') })[0]!,
    /^gatehouse\.toml:1: acme\.terms_of_service_agreed: .*a\.toml uses tls\.acme: set terms_of_service_agreed = true .*acme-staging-v02/,
  );
  assert.match(
    problems('[acme]\ndirectory = "http://ca.test/dir"\nrenew_ratio = 1\n', {
      a: site('"a.test"', 'acme = true'),
    }).join('\n'),
    /gatehouse\.toml:2: acme\.directory: use "production", "staging" or an https:\/\/ ACME directory URL\ngatehouse\.toml:3: acme\.renew_ratio: /,
  );

  const dir = writeConfig(`${agreed}http_port = 8080\nstorage = "state"\n`, { a: site('"a.test"', 'acme = true') });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = loadConfig(dir);
  assert.deepEqual(config.http.listen, [{ host: '0.0.0.0', port: 8080 }], 'HTTP-01 gets a listener on http_port');
  assert.equal(config.acme.directoryUrl, 'https://acme-v02.api.letsencrypt.org/directory');
  assert.equal(config.acme.accountKeyFile, path.join(dir, 'state', 'acme-account.key'));
  assert.equal(config.acme.renewRatio, 1 / 3);
  assert.deepEqual(config.sites[0]!.tls, { source: 'acme' });
});
