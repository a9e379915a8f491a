// Recovery from what goes wrong between runs or behind Gatehouse's back: a CA that forgot or deactivated the account,
// a stored pair damaged while serving, a crash in the middle of storing a new pair (old and new layout), challenge
// files a killed order left, a challenge port that reaches us only through a forward; against real Pebble and
// checked by real TLS handshakes.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import acme from 'acme-client';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { certsTable } from '../../src/cli/certs.ts';
import { loadConfig } from '../../src/config/load.ts';
import { trustForAcme } from '../../src/acme/account.ts';
import type { CertInfo } from '../../src/acme/storage.ts';
import type { KeyPair } from '../../src/tls/certificate-store.ts';
import { createSelfSigned } from '../../src/tls/self-signed.ts';
import { FAST_POLL, startGatehouse, writeConfig, type Gatehouse } from '../harness/gatehouse-acme.ts';
import { freePort } from '../harness/net.ts';
import { startPebble } from '../harness/pebble.ts';
import { acmeMain, acmeScenario, acmeSite, plainGet, presented } from '../harness/acme-setup.ts';

/** Bounded wait for an ACME event, so a fault that never recovers fails the test with its log instead of hanging it. */
async function next<E extends 'installed' | 'failed'>(gatehouse: Gatehouse, event: E, ms = 60_000) {
  try {
    return await once(gatehouse.acme!.events, event, { signal: AbortSignal.timeout(ms) });
  } catch (error) {
    throw new Error(
      `no "${event}" event within ${ms / 1000} s; log:\n${gatehouse
        .logs()
        .map((l) => JSON.stringify(l))
        .join('\n')}`,
      { cause: error },
    );
  }
}

const servedPair = (domainDir: string): KeyPair => ({
  certPem: fs.readFileSync(path.join(domainDir, 'fullchain.pem'), 'utf8'),
  keyPem: fs.readFileSync(path.join(domainDir, 'privkey.pem'), 'utf8'),
});

/** The next certificate the running Gatehouse orders; a failure matching `fatal` ends the wait at once. */
function nextOrdered(gatehouse: Gatehouse, fatal: RegExp, ms = 90_000): Promise<CertInfo> {
  const events = gatehouse.acme!.events;
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      events.off('installed', onInstalled);
      events.off('failed', onFailed);
    };
    const onInstalled = (_domain: string, info: CertInfo, origin: string) => {
      if (origin === 'order') {
        done();
        resolve(info);
      }
    };
    const onFailed = (_domain: string, message: string) => {
      if (fatal.test(message)) {
        done();
        reject(new Error(`the renewal failed: ${message}`));
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(
        new Error(
          `no renewal within ${ms / 1000} s; log:\n${gatehouse
            .logs()
            .map((l) => JSON.stringify(l))
            .join('\n')}`,
        ),
      );
    }, ms);
    events.on('installed', onInstalled);
    events.on('failed', onFailed);
  });
}

test('a CA that forgot the account (restarted): the next renewal registers the same key again, without a Gatehouse restart', async (t) => {
  // ratio 0.5 of 30 s: the scheduler renews 15 s into each certificate's life.
  const { pebble, dir, gatehouse } = await acmeScenario(t, {
    pebble: { validitySeconds: 30 },
    acme: { renew_ratio: '0.5' },
  });
  const [, first] = await next(gatehouse, 'installed');
  const keyFile = path.join(dir, 'certs', 'acme-account.key');
  const accountKey = fs.readFileSync(keyFile, 'utf8');
  await pebble.restart(); // a new Pebble process: no accounts, new roots

  // An order that failed while Pebble was restarting is retried; one that fails because the account is unknown
  // (accountDoesNotExist, "Account … not found") would fail again at every renewal.
  const renewed = await nextOrdered(gatehouse, /not found|does not exist|accountDoesNotExist/i);
  assert.notEqual(renewed.serial, first.serial);
  const served = await presented(gatehouse.httpsPort, 'app.test', await pebble.rootPem());
  assert.equal(served.serial, renewed.serial);
  assert.equal(served.authorized, true, 'issued by the restarted Pebble');
  assert.equal(fs.readFileSync(keyFile, 'utf8'), accountKey, 'the same account key, registered again');
});

test('a deactivated account: a new account key registers a new account (the old key kept aside) and the renewal goes on', async (t) => {
  const { pebble, dir, gatehouse } = await acmeScenario(t);
  const [, first] = await next(gatehouse, 'installed');
  const keyFile = path.join(dir, 'certs', 'acme-account.key');
  const oldKey = fs.readFileSync(keyFile, 'utf8');
  trustForAcme(fs.readFileSync(pebble.wfeCaFile, 'utf8'));
  const owner = new acme.Client({ directoryUrl: pebble.directoryUrl, accountKey: oldKey });
  await owner.createAccount({ termsOfServiceAgreed: true, contact: ['mailto:ops@app.test'] }); // the existing account
  assert.equal((await owner.updateAccount({ status: 'deactivated' } as never)).status, 'deactivated'); // RFC 8555 §7.3.6

  const renewed = await gatehouse.acme!.renewNow('app.test');
  assert.notEqual(renewed.serial, first.serial);
  assert.equal((await presented(gatehouse.httpsPort, 'app.test', await pebble.rootPem())).serial, renewed.serial);
  assert.notEqual(fs.readFileSync(keyFile, 'utf8'), oldKey, 'a new account key');
  const retired = fs.readdirSync(path.dirname(keyFile)).filter((n) => n.startsWith('acme-account.key.deactivated-'));
  assert.equal(retired.length, 1);
  assert.equal(
    fs.readFileSync(path.join(path.dirname(keyFile), retired[0]!), 'utf8'),
    oldKey,
    'the refused key is kept, not deleted',
  );
  assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
  assert.ok(
    gatehouse
      .logs()
      .some((l) => l.msg === 'the CA deactivated the ACME account: registering a new one with a new account key'),
  );
});

test('a stored certificate damaged while serving is replaced by a new order at once', async (t) => {
  const { pebble, dir, gatehouse } = await acmeScenario(t, { acme: { check_interval: '"1h"' } });
  const [, first] = await next(gatehouse, 'installed');
  const domainDir = path.join(dir, 'certs', 'app.test');
  const renewed = next(gatehouse, 'installed');
  const chain = fs.readFileSync(path.join(domainDir, 'fullchain.pem'), 'utf8');
  fs.writeFileSync(path.join(domainDir, 'fullchain.pem'), chain.slice(0, 300)); // truncated in place

  const [, second, origin] = await renewed;
  assert.equal(origin, 'order', 'a new certificate was ordered');
  assert.notEqual(second.serial, first.serial);
  const line = gatehouse
    .logs()
    .find((l) => l.msg === 'stored certificate is unusable; keeping the one in service and ordering a new one');
  assert.ok(line, 'the damage is logged');
  assert.match(String(line.reason), /truncated/);
  assert.equal((await presented(gatehouse.httpsPort, 'app.test', await pebble.rootPem())).serial, second.serial);
  assert.match(
    fs.readFileSync(path.join(domainDir, 'fullchain.pem'), 'utf8'),
    /END CERTIFICATE/,
    'storage holds a valid pair again',
  );
});

/** Two real Pebble certificates for app.test (storage then holds the second), then Pebble stopped: "the CA is down". */
async function twoCertificatesThenCaDown(t: import('node:test').TestContext) {
  const { pebble, dir, gatehouse } = await acmeScenario(t);
  const [, first] = await next(gatehouse, 'installed');
  const domainDir = path.join(dir, 'certs', 'app.test');
  const pair1 = servedPair(domainDir);
  const second = await gatehouse.acme!.renewNow('app.test');
  const pair2 = servedPair(domainDir);
  assert.notEqual(first.serial, second.serial);
  await gatehouse.stop();
  await pebble.halt();
  return { dir, domainDir, first, second, pair1, pair2 };
}

test('crash between the key and the chain in the old layout: the pair left whole is served with the CA down, and moved to the new layout', async (t) => {
  const { dir, domainDir, second, pair1, pair2 } = await twoCertificatesThenCaDown(t);
  // What the old writer (privkey.pem renamed, then fullchain.pem) left when killed before its second rename: the new
  // key beside the old chain, and the new chain complete in writeFileAtomic's temporary file.
  fs.rmSync(domainDir, { recursive: true });
  fs.mkdirSync(domainDir);
  fs.writeFileSync(path.join(domainDir, 'privkey.pem'), pair2.keyPem, { mode: 0o600 });
  fs.writeFileSync(path.join(domainDir, 'fullchain.pem'), pair1.certPem);
  fs.writeFileSync(path.join(domainDir, '.fullchain.pem.0a1b2c3d4e5f.tmp'), pair2.certPem);

  const gatehouse = await startGatehouse(dir);
  t.after(() => gatehouse.stop());
  const served = await presented(gatehouse.httpsPort, 'app.test');
  assert.equal(served.serial, second.serial, 'the last valid pair, not a self-signed certificate');
  assert.ok(gatehouse.logs().some((l) => l.msg === 'stored certificate recovered from an interrupted write'));
  // Moved into the new layout: one folder for the pair, `current` on it, the old names now links, the leftover gone.
  const current = fs.readlinkSync(path.join(domainDir, 'current'));
  assert.match(current, new RegExp(`^\\d{8}T\\d{6}Z-${second.serial}$`));
  assert.deepEqual(servedPair(path.join(domainDir, current)), pair2);
  assert.equal(fs.readlinkSync(path.join(domainDir, 'fullchain.pem')), 'current/fullchain.pem');
  assert.equal(fs.readlinkSync(path.join(domainDir, 'privkey.pem')), 'current/privkey.pem');
  assert.equal(fs.existsSync(path.join(domainDir, '.fullchain.pem.0a1b2c3d4e5f.tmp')), false);
});

test('a half-written issuance folder: the last valid pair is served with the CA down, whether or not current points to it', async (t) => {
  const { dir, domainDir, first, second } = await twoCertificatesThenCaDown(t);
  assert.match(fs.readlinkSync(path.join(domainDir, 'current')), new RegExp(`-${second.serial}$`));
  assert.deepEqual(
    fs
      .readdirSync(domainDir)
      .filter((n) => /^\d{8}T/.test(n))
      .map((n) => n.split('-')[1])
      .sort(),
    [first.serial, second.serial].sort(),
    'the previous pair is kept',
  );
  // Killed while writing a third pair: its folder has the key, the chain only as a partial temporary file.
  const half = path.join(domainDir, '29991231T235959Z-0abc');
  fs.mkdirSync(half);
  fs.writeFileSync(path.join(half, 'privkey.pem'), (await createSelfSigned(['app.test'])).keyPem);
  fs.writeFileSync(path.join(half, '.fullchain.pem.0a1b2c3d4e5f.tmp'), '-----BEGIN CERTIFICATE-----\nMIIB');

  let gatehouse = await startGatehouse(dir);
  assert.equal(
    (await presented(gatehouse.httpsPort, 'app.test')).serial,
    second.serial,
    'current still names the last whole pair',
  );
  await gatehouse.stop();

  // A folder whose files never reached the disk although `current` was switched (no flush): the pair before is served.
  fs.symlinkSync('29991231T235959Z-0abc', path.join(domainDir, 'current.new'));
  fs.renameSync(path.join(domainDir, 'current.new'), path.join(domainDir, 'current'));
  gatehouse = await startGatehouse(dir);
  t.after(() => gatehouse.stop());
  assert.equal((await presented(gatehouse.httpsPort, 'app.test')).serial, second.serial, 'the newest whole pair');
  const line = gatehouse.logs().find((l) => String(l.msg).startsWith('stored certificate is unusable'));
  assert.equal(
    line?.msg,
    `stored certificate is unusable; serving the previous one (serial ${second.serial}) and ordering a new one`,
  );
  assert.match(
    await certsTable(loadConfig(dir)),
    new RegExp(`^app\\.test\\s+acme \\(the newest is unusable, serving the one before: .*29991231T235959Z-0abc`, 'm'),
  );
  const [, message] = await next(gatehouse, 'failed'); // it does order; the CA is down
  assert.match(message, /ECONNREFUSED|cannot reach/);
  assert.equal(
    (await presented(gatehouse.httpsPort, 'app.test')).serial,
    second.serial,
    'still served while the CA is down',
  );
});

/** Resolves once `file` is gone (fs.watch on its folder), or fails after ms. */
async function removed(file: string, ms = 30_000): Promise<void> {
  const watcher = fs.watch(path.dirname(file));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${file} still there after ${ms / 1000} s`)), ms);
      const check = () => {
        if (!fs.existsSync(file)) {
          clearTimeout(timer);
          resolve();
        }
      };
      watcher.on('change', check);
      check();
    });
  } finally {
    watcher.close();
  }
}

test("challenge files a killed order left are removed at start and at the next check; a live order's are kept", async (t) => {
  const hourAgo = new Date(Date.now() - 3_600_000);
  let challenges = '';
  const leave = (name: string, content: string, mtime?: Date) => {
    fs.writeFileSync(path.join(challenges, name), content);
    if (mtime) fs.utimesSync(path.join(challenges, name), mtime, mtime);
  };
  const { pebble, gatehouse } = await acmeScenario(t, {
    before: (dir) => {
      challenges = path.join(dir, 'certs', 'challenges');
      fs.mkdirSync(challenges, { recursive: true });
      leave('killed-order', 'killed-order.thumb', hourAgo); // its process was killed an hour ago
      leave('.killed-order-2.0a1b2c3d4e5f.tmp', 'killed-ord', hourAgo); // killed while writing it
      leave('live-order', 'live-order.thumb'); // another process's order, running now
    },
  });
  assert.equal(fs.existsSync(path.join(challenges, 'killed-order')), false, 'removed at start');
  assert.equal(fs.existsSync(path.join(challenges, '.killed-order-2.0a1b2c3d4e5f.tmp')), false);
  assert.equal(
    (await plainGet(pebble.httpPort, '/.well-known/acme-challenge/live-order', 'app.test')).body,
    'live-order.thumb',
    'kept and answered',
  );
  await next(gatehouse, 'installed');

  leave('killed-later', 'killed-later.thumb', hourAgo);
  await removed(path.join(challenges, 'killed-later')); // at the scheduler's next pass (check_interval is 1 s here)
  assert.ok(fs.existsSync(path.join(challenges, 'live-order')));
  assert.deepEqual(
    fs.readdirSync(challenges).sort(),
    ['live-order'],
    "the order's own tokens were removed when it ended",
  );
});

test('the challenge port reaches us only through a forward (nothing answers it on this host): the order goes on after the wait', async (t) => {
  const pebble = await startPebble();
  t.after(() => pebble.stop());
  // Gatehouse listens on another port; the CA's connections arrive on 127.0.0.2:<http_port> and are forwarded to it,
  // as a container's port mapping does: 127.0.0.1:<http_port> on this host stays closed.
  const port = await freePort();
  const forward = net.createServer((socket) => {
    const upstream = net.connect(port, '127.0.0.1');
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => forward.listen(pebble.httpPort, '127.0.0.2', resolve));
  t.after(() => forward.close());
  pebble.answer.ip = '127.0.0.2';
  const dir = writeConfig(
    acmeMain(pebble).replace(`listen = ["127.0.0.1:${pebble.httpPort}"]`, `listen = ["127.0.0.1:${port}"]`),
    { 'app.test': acmeSite(['app.test', 'www.app.test'], 'http://127.0.0.1:9') },
  );
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const gatehouse = await startGatehouse(dir, { poll: FAST_POLL, challengeWaitMs: 1_000 });
  t.after(() => gatehouse.stop());

  const [, first, origin] = await next(gatehouse, 'installed');
  assert.equal(origin, 'order');
  const warned = gatehouse
    .logs()
    .filter((l) =>
      String(l.msg).startsWith(
        `nothing answers HTTP-01 on port ${pebble.httpPort} of this host within 1 s: asking the CA anyway`,
      ),
    );
  assert.equal(warned.length, 1, 'one wait for the order, not one per name');
  // The forward is known to work now: the next order does not wait for it again.
  const waits = () => gatehouse.logs().filter((l) => String(l.msg).startsWith('waiting for the HTTP-01 token')).length;
  const before = waits();
  const second = await gatehouse.acme!.renewNow('app.test');
  assert.notEqual(second.serial, first.serial);
  assert.equal(waits(), before);
});
