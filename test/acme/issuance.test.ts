// Issuance against real Pebble: one certificate for a site's two names, served at once and verified against
// Pebble's root; files, modes and metadata in certs/; the HTTP-01 responder; a restart reuses the stored certificate.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { certs as certsCommand, certsTable } from '../../src/cli/certs.ts';
import { loadConfig } from '../../src/config/load.ts';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { startGatehouse, writeConfig } from '../harness/gatehouse-acme.ts';
import { startPebble } from '../harness/pebble.ts';
import { acmeMain, acmeSite, plainGet, presented } from '../harness/acme-setup.ts';

test('a site with two names gets one Pebble certificate, served without restart and reused after one', async (t) => {
  const pebble = await startPebble();
  t.after(() => pebble.stop());
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  const dir = writeConfig(acmeMain(pebble), { 'app.test': acmeSite(['app.test', 'www.app.test'], backend.url) });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const first = await startGatehouse(dir);
  const installed = once(first.acme!.events, 'installed');
  t.after(() => first.stop());
  const [domain, , origin] = await installed;
  assert.equal(domain, 'app.test');
  assert.equal(origin, 'order');

  const root = await pebble.rootPem();
  for (const name of ['app.test', 'www.app.test']) {
    const cert = await presented(first.httpsPort, name, root);
    assert.equal(cert.authorized, true, `${name}: ${cert.authorizationError}`);
    assert.equal(cert.names, 'DNS:app.test, DNS:www.app.test');
  }

  const certs = path.join(dir, 'certs');
  assert.equal(fs.statSync(path.join(certs, 'app.test', 'privkey.pem')).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.join(certs, 'acme-account.key')).mode & 0o777, 0o600);
  const accountKey = fs.readFileSync(path.join(certs, 'acme-account.key'), 'utf8');
  assert.match(
    fs.readFileSync(path.join(certs, 'app.test', 'fullchain.pem'), 'utf8'),
    /(-----BEGIN CERTIFICATE-----[\s\S]+?){2}/,
  );
  const meta = JSON.parse(fs.readFileSync(path.join(certs, 'app.test', 'meta.json'), 'utf8'));
  assert.match(meta.issuer, /^Pebble Intermediate CA/);
  assert.ok(
    Date.parse(meta.not_before) < Date.parse(meta.next_renewal) &&
      Date.parse(meta.next_renewal) < Date.parse(meta.not_after),
  );
  assert.equal(meta.renewal_source, 'ratio');
  assert.equal(pebble.issued(), 1);

  const table = await certsTable(loadConfig(dir));
  assert.match(table, /^app\.test\s+acme\s+Pebble Intermediate CA \w+\s+\d{4}-/m);
  t.diagnostic(`gatehouse certs list:\n${table}`);
  t.diagnostic(
    `issuance against Pebble took ${meta.order_ms} ms (account + order + 2 authorizations + finalize + download)`,
  );

  // The responder: known host with a port in Host, unknown token → 404; everything else still goes to HTTPS.
  const challenge = await plainGet(
    pebble.httpPort,
    '/.well-known/acme-challenge/not-a-token',
    `app.test:${pebble.httpPort}`,
  );
  assert.equal(challenge.status, 404);
  assert.match(challenge.body, /ERR_ACME_UNKNOWN_TOKEN/);
  const other = await plainGet(pebble.httpPort, '/x', 'app.test');
  assert.equal(other.status, 308);

  await first.stop();
  const second = await startGatehouse(dir);
  t.after(() => second.stop());
  await second.acme!.checkAll();
  const again = await presented(second.httpsPort, 'app.test', root);
  assert.equal(again.authorized, true);
  assert.equal(again.serial, meta.serial);
  assert.equal(pebble.issued(), 1, 'a restart must not order again');

  // `gatehouse certs renew` beside the running server: it orders (the server answers the CA from the shared
  // challenges folder, since it holds the HTTP port) and the server serves the new certificate at once.
  const adopted = once(second.acme!.events, 'installed');
  let printed = '';
  assert.equal(
    await certsCommand(dir, ['renew', 'app.test'], (text) => {
      printed += text;
    }),
    0,
  );
  const [, renewed, origin2] = await adopted;
  assert.equal(origin2, 'storage');
  assert.notEqual(renewed.serial, meta.serial);
  assert.match(
    printed,
    new RegExp(`^app\\.test: new certificate from Pebble Intermediate CA \\w+, serial ${renewed.serial}`),
  );
  assert.equal((await presented(second.httpsPort, 'app.test', root)).serial, renewed.serial);
  assert.equal(pebble.issued(), 2);
  assert.equal(
    fs.readFileSync(path.join(certs, 'acme-account.key'), 'utf8'),
    accountKey,
    'the account key is made once and reused',
  );
});
