// Faults: a domain that stops pointing at us (failing challenge), an unreachable CA, corrupt files in certs/.
// Each gives a clear log line; the site keeps serving its last valid certificate; nothing valid is overwritten.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { certsTable } from '../../src/cli/certs.ts';
import { loadConfig } from '../../src/config/load.ts';
import { startGatehouse, writeConfig } from '../harness/gatehouse-acme.ts';
import { sample, scrape } from '../harness/metrics.ts';
import { freePort } from '../harness/net.ts';
import { acmeMain, acmeScenario, acmeSite, presented } from '../harness/acme-setup.ts';
import { until } from '../harness/wait.ts';

const UPSTREAM = 'http://127.0.0.1:9';

test('a failing challenge is retried with backoff while the old certificate stays in service', async (t) => {
  // ratio 0.9: renewal is due 3 s into the 30 s lifetime.
  const { pebble, dir, gatehouse } = await acmeScenario(t, {
    pebble: { validitySeconds: 30 },
    acme: { renew_ratio: '0.9' },
    before: (config) => fs.appendFileSync(path.join(config, 'gatehouse.toml'), '[metrics]\nlisten = "127.0.0.1:0"\n'),
  });
  const installed: { serial: string; notAfter: Date }[] = [];
  gatehouse.acme!.events.on('installed', (_domain: string, cert: { serial: string; notAfter: Date }) =>
    installed.push(cert),
  );
  await until(() => installed.length > 0, 'the first certificate');
  const chainFile = path.join(dir, 'certs', 'app.test', 'fullchain.pem');

  pebble.answer.ip = '127.0.0.2'; // the name now points elsewhere: nothing listens there
  const [, message] = await once(gatehouse.acme!.events, 'failed');
  // The certificate in service: on a slow machine a renewal already validated when the name moved may have landed.
  const first = installed.at(-1)!;
  const chainBefore = fs.readFileSync(chainFile, 'utf8');
  assert.match(message, /app\.test/);
  assert.match(message, /refused|Connection|unauthorized|Fetching/i, message);
  await once(gatehouse.acme!.events, 'failed'); // retried, not given up
  const metrics = (await scrape(gatehouse.listening.metrics!.port)).body;
  assert.ok(
    (sample(metrics, 'gatehouse_acme_renewal_failures_total{site="app.test"}') ?? 0) >= 2,
    'failures are counted for /metrics',
  );
  assert.equal(
    sample(metrics, 'gatehouse_certificate_not_after_seconds{site="app.test"}'),
    first.notAfter.getTime() / 1000,
    "the served certificate's expiry",
  );
  const root = await pebble.rootPem();
  const served = await presented(gatehouse.httpsPort, 'app.test', root);
  assert.equal(served.serial, first.serial, 'the old certificate stays in service');
  assert.equal(fs.readFileSync(chainFile, 'utf8'), chainBefore, 'nothing valid is overwritten');
  const line = gatehouse
    .logs()
    .find(
      (l) =>
        l.msg === `certificate order failed; still serving the certificate valid until ${first.notAfter.toISOString()}`,
    );
  assert.ok(line, 'a clear log line');
  assert.equal(line.domain, 'app.test');
  assert.match(String(line.err), /app\.test/);
  assert.match(await certsTable(loadConfig(dir)), /^app\.test\s+acme\s+.*Z \S+ .*app\.test/m);

  pebble.answer.ip = '127.0.0.1';
  const [, renewed, origin] = await once(gatehouse.acme!.events, 'installed');
  assert.equal(origin, 'order');
  assert.notEqual(renewed.serial, first.serial);
  assert.match(
    await certsTable(loadConfig(dir)),
    /^app\.test\s+acme\s+.*\s-$/m,
    'the last error is cleared by a success',
  );
});

test('an unreachable CA: a clear error, the temporary self-signed certificate keeps HTTPS answering', async (t) => {
  const pebble = {
    directoryUrl: `https://127.0.0.1:${await freePort()}/dir`,
    wfeCaFile: '',
    httpPort: await freePort(),
  };
  const main = acmeMain(pebble as never).replace(/^ca_root = .*$/m, '');
  const dir = writeConfig(main, { 'app.test': acmeSite(['app.test', 'www.app.test'], UPSTREAM) });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const gatehouse = await startGatehouse(dir);
  t.after(() => gatehouse.stop());
  const [domain, message] = await once(gatehouse.acme!.events, 'failed');
  assert.equal(domain, 'app.test');
  assert.match(message, /ECONNREFUSED/);
  const served = await presented(gatehouse.httpsPort, 'www.app.test');
  assert.equal(served.issuer, 'app.test', 'self-signed for the site');
  assert.equal(served.names, 'DNS:app.test, DNS:www.app.test');
  assert.ok(
    gatehouse
      .logs()
      .some(
        (l) =>
          l.msg === 'certificate order failed; still serving the temporary self-signed certificate' &&
          /ECONNREFUSED/.test(String(l.err)),
      ),
  );
  assert.equal(fs.existsSync(path.join(dir, 'certs', 'app.test', 'fullchain.pem')), false);
});

test('corrupt files in certs/ are reported and replaced by a new order (bad nonces are retried)', async (t) => {
  let domainDir = '';
  const { pebble, gatehouse } = await acmeScenario(t, {
    pebble: { env: { PEBBLE_WFE_NONCEREJECT: '30' } },
    before: (dir) => {
      domainDir = path.join(dir, 'certs', 'app.test');
      fs.mkdirSync(domainDir, { recursive: true });
      fs.writeFileSync(path.join(domainDir, 'fullchain.pem'), '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n'); // truncated
      fs.writeFileSync(path.join(domainDir, 'privkey.pem'), '-----BEGIN PRIVATE KEY-----\n');
    },
  });
  const [, info] = await once(gatehouse.acme!.events, 'installed');
  const line = gatehouse.logs().find((l) => String(l.msg).startsWith('stored certificate is unusable'));
  assert.ok(line);
  assert.match(String(line.reason), /truncated/);
  const root = await pebble.rootPem();
  assert.equal((await presented(gatehouse.httpsPort, 'app.test', root)).serial, info.serial);
  assert.match(fs.readFileSync(path.join(domainDir, 'fullchain.pem'), 'utf8'), /END CERTIFICATE/);
});

test('a profile the CA does not offer is a clear error, not a silent fallback', async (t) => {
  const { pebble, gatehouse } = await acmeScenario(t, { acme: { profile: '"shortlived"' } });
  const [, message] = await once(gatehouse.acme!.events, 'failed');
  assert.equal(message, 'the CA does not offer the ACME profile "shortlived" (offers: no profiles)');
  assert.equal(pebble.issued(), 0);
});
