// Two `gatehouse serve` processes sharing one certs/ folder order the certificate once: the lock file in
// certs/locks/ lets one order, the other picks up the stored result. Only one of them holds the HTTP port the CA
// validates on; it answers the other's tokens from certs/challenges/ too. Within one process, workers = 2 runs one
// renewal scheduler (runtime/cluster.ts).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { writeConfig } from '../harness/gatehouse-acme.ts';
import { freePort } from '../harness/net.ts';
import { startPebble } from '../harness/pebble.ts';
import { acmeMain, acmeSite, presented } from '../harness/acme-setup.ts';

interface Served {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  waitFor(pred: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

function serve(configDir: string): Served {
  const child = spawn(process.execPath, ['src/main.ts', 'serve', '--config', configDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Array<Record<string, unknown>> = [];
  const waiters = new Set<() => void>();
  let buffer = '';
  child.stdout!.setEncoding('utf8').on('data', (data: string) => {
    buffer += data;
    const parts = buffer.split('\n');
    buffer = parts.pop()!;
    for (const part of parts) if (part.startsWith('{')) lines.push(JSON.parse(part));
    for (const wake of waiters) wake();
  });
  return {
    child,
    lines,
    waitFor: (pred) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const found = lines.find(pred);
          if (found) {
            waiters.delete(check);
            resolve(found);
          } else if (child.exitCode !== null) reject(new Error(`gatehouse exited ${child.exitCode}`));
        };
        waiters.add(check);
        check();
      }),
  };
}

/** SIGTERM; a process that does not stop within 5 s is killed, so it never outlives the test (and hangs the run). */
async function stop(p: Served): Promise<void> {
  if (p.child.exitCode !== null) return;
  const gone = new Promise((resolve) => p.child.once('exit', resolve));
  p.child.kill('SIGTERM');
  const kill = setTimeout(() => p.child.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(kill);
}

test('two processes sharing certs/ order the certificate once and both serve it', async (t) => {
  const pebble = await startPebble();
  t.after(() => pebble.stop());
  const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-certs-'));
  t.after(() => fs.rmSync(shared, { recursive: true, force: true }));
  const site = { 'app.test': acmeSite(['app.test', 'www.app.test'], 'http://127.0.0.1:9') };
  const base = acmeMain(pebble, { storage: `"${shared}"` }).replace('[log]\n', '[log]\nlevel = "info"\n');
  const dirA = writeConfig(base, site);
  const dirB = writeConfig(
    base.replace(`listen = ["127.0.0.1:${pebble.httpPort}"]`, `listen = ["127.0.0.1:${await freePort()}"]`),
    site,
  );
  t.after(() => {
    fs.rmSync(dirA, { recursive: true, force: true });
    fs.rmSync(dirB, { recursive: true, force: true });
  });

  const a = serve(dirA);
  const b = serve(dirB);
  t.after(async () => {
    await stop(a);
    await stop(b);
  });
  const installed = (line: Record<string, unknown>) => line.msg === 'certificate installed for new connections';
  const [fromA, fromB] = await Promise.all([a.waitFor(installed), b.waitFor(installed)]);
  assert.equal(fromA.serial, fromB.serial, 'both serve the same certificate');
  assert.equal(pebble.issued(), 1, 'ordered once');
  assert.deepEqual([fromA.origin, fromB.origin].sort(), ['order', 'storage']);

  const root = await pebble.rootPem();
  for (const p of [a, b]) {
    const port = Number(String((await p.waitFor((l) => l.msg === 'listening')).https).split(':')[1]);
    const cert = await presented(port, 'www.app.test', root);
    assert.equal(cert.authorized, true);
    assert.equal(cert.serial, fromA.serial);
  }
  assert.deepEqual(fs.readdirSync(path.join(shared, 'locks')), [], 'no lock left behind');
});

test('workers = 2: one worker runs the renewal scheduler, both serve its certificate, the role survives a crash', async (t) => {
  const pebble = await startPebble();
  t.after(() => pebble.stop());
  const dir = writeConfig(
    acmeMain(pebble).replace('workers = 1', 'workers = 2').replace('[log]\n', '[log]\nlevel = "debug"\n'),
    { 'app.test': acmeSite(['app.test'], 'http://127.0.0.1:9') },
  );
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const p = serve(dir);
  t.after(() => stop(p));
  const installed = (line: Record<string, unknown>) => line.msg === 'certificate installed for new connections';
  await p.waitFor((l) => installed(l) && l.origin === 'order');
  await p.waitFor((l) => installed(l) && l.origin === 'storage');
  const workers = new Set(p.lines.filter((l) => l.msg === 'listening').map((l) => l.pid));
  assert.equal(workers.size, 2);
  const schedulers = p.lines.filter((l) => l.msg === 'renewal scheduler started').map((l) => l.pid as number);
  assert.equal(schedulers.length, 1, 'one scheduler in the cluster');
  assert.equal(pebble.issued(), 1, 'ordered once');
  assert.ok(
    p.lines.filter(installed).some((l) => l.origin === 'storage' && l.pid !== schedulers[0]),
    'the other worker serves the stored certificate',
  );

  // The scheduler's worker dies: its replacement takes the role over (and finds the stored certificate still fit).
  process.kill(schedulers[0]!, 'SIGKILL');
  const next = await p.waitFor((l) => l.msg === 'renewal scheduler started' && l.pid !== schedulers[0]);
  assert.ok(!workers.has(next.pid), 'the replacement worker runs it');
  // Its first pass over the certificates orders nothing: the stored one is still fit.
  await p.waitFor((l) => l.msg === 'certificates checked' && l.pid === next.pid);
  assert.equal(pebble.issued(), 1, 'no new order for a certificate that is still fit');
});

test('the process holding the challenge port comes up late: the other asks the CA only once its token is answered', async (t) => {
  const pebble = await startPebble();
  t.after(() => pebble.stop());
  const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-certs-'));
  t.after(() => fs.rmSync(shared, { recursive: true, force: true }));
  const site = { 'app.test': acmeSite(['app.test'], 'http://127.0.0.1:9') };
  const base = acmeMain(pebble, { storage: `"${shared}"` }).replace('[log]\n', '[log]\nlevel = "info"\n');
  const dirA = writeConfig(base, site); // holds the port the CA validates on
  const dirB = writeConfig(
    base.replace(`listen = ["127.0.0.1:${pebble.httpPort}"]`, `listen = ["127.0.0.1:${await freePort()}"]`),
    site,
  );
  t.after(() => {
    fs.rmSync(dirA, { recursive: true, force: true });
    fs.rmSync(dirB, { recursive: true, force: true });
  });

  // B starts alone and orders: its token is published before anything listens on the CA's port.
  const b = serve(dirB);
  t.after(() => stop(b));
  const failed = (line: Record<string, unknown>) => String(line.msg).startsWith('certificate order failed');
  const waiting = 'waiting for the HTTP-01 token to be answered on this host before asking the CA to validate';
  await b.waitFor((l) => l.msg === waiting || failed(l));
  const a = serve(dirA); // now the process with the challenge port starts
  t.after(() => stop(a));
  const installed = (line: Record<string, unknown>) => line.msg === 'certificate installed for new connections';
  const [fromA, fromB] = await Promise.all([a.waitFor(installed), b.waitFor(installed)]);

  assert.deepEqual(
    [...b.lines, ...a.lines].filter(failed).map((l) => l.err),
    [],
    'no order failed',
  );
  assert.ok(
    b.lines.some((l) => l.msg === waiting),
    'B waited for the token to be answered',
  );
  assert.equal(fromB.origin, 'order');
  assert.equal(fromA.origin, 'storage');
  assert.equal(fromA.serial, fromB.serial);
  assert.equal(pebble.issued(), 1);
  const port = Number(String((await a.waitFor((l) => l.msg === 'listening')).https).split(':')[1]);
  const cert = await presented(port, 'app.test', await pebble.rootPem());
  assert.equal(cert.authorized, true);
  assert.equal(cert.serial, fromB.serial);
});
