// systemd Type=notify: with NOTIFY_SOCKET set, `gatehouse serve` sends READY=1 once every listener is open,
// RELOADING=1 (with MONOTONIC_USEC, as systemd 253+ wants) and READY=1 around a SIGHUP reload, STOPPING=1 when it
// stops; gatehouse_reloads_total counts each reload's outcome. The receiving end is a real AF_UNIX datagram socket
// (python3), as systemd's own; it closes the descriptor systemd-notify's barrier sends, as systemd does.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { closedPort } from '../harness/backend.ts';
import { request } from '../harness/clients.ts';
import { siteToml, writeConfig } from '../harness/gatehouse.ts';
import { sample, scrape } from '../harness/metrics.ts';
import { createTestCa } from '../harness/pki.ts';
import { spawnGatehouse } from '../harness/spawn-gatehouse.ts';
import { until, WAIT_MS } from '../harness/wait.ts';

const ca = createTestCa();
const cert = ca.issue(['app.test']);

const LISTENER = `
import array, json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps("bound"), flush=True)
while True:
    data, ancillary, _flags, _address = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            for fd in fds:
                os.close(fd)
    print(json.dumps(data.decode()), flush=True)
`;

/** A notify socket like systemd's; `messages` are the datagrams as received, barriers left out. */
async function notifySocket(t: TestContext): Promise<{ path: string; messages: string[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-notify-'));
  const socketPath = path.join(dir, 'notify.sock');
  const python = spawn('python3', ['-c', LISTENER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    python.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const messages: string[] = [];
  let bound = false;
  createInterface({ input: python.stdout! }).on('line', (line) => {
    const message = JSON.parse(line) as string;
    if (message === 'bound') bound = true;
    else if (message !== 'BARRIER=1') messages.push(message);
  });
  await until(() => bound || python.exitCode !== null, 'python3 to bind the AF_UNIX datagram socket');
  assert.ok(bound, 'python3 bound the notify socket');
  return { path: socketPath, messages };
}

/** Resolves with the index of the first message at or after `from` that `matches`. */
async function message(messages: string[], from: number, matches: RegExp): Promise<number> {
  await until(
    () => messages.slice(from).some((m) => matches.test(m)),
    () => `a notification ${matches} after #${from}: ${JSON.stringify(messages)}`,
  );
  return from + messages.slice(from).findIndex((m) => matches.test(m));
}

for (const workers of [1, 2])
  test(
    `workers = ${workers}: READY=1 once listening, RELOADING=1 + MONOTONIC_USEC then READY=1 around SIGHUP, STOPPING=1; reloads counted by outcome`,
    { timeout: 180_000 },
    async (t) => {
      const notify = await notifySocket(t);
      const backend = await startEchoUpstream();
      t.after(() => backend.close());
      const port = await closedPort();
      const main = `workers = ${workers}\n[https]\nlisten = ["127.0.0.1:${port}"]\n[metrics]\nlisten = "127.0.0.1:0"\n`;
      const dir = writeConfig({ main, sites: { app: siteToml(['app.test'], cert, backend.url) } });
      const gh = spawnGatehouse(['serve', '--config', dir], undefined, undefined, { NOTIFY_SOCKET: notify.path });
      t.after(() => {
        if (gh.child.exitCode === null) gh.child.kill('SIGKILL');
      });

      // READY=1: from then on the listener answers (a READY=1 before the listeners open would fail this request).
      const ready = await message(notify.messages, 0, /^READY=1\n/m);
      assert.equal((await request(port, { ca: ca.caPem, servername: 'app.test' })).status, 200);
      // With workers, the primary says READY=1 once every worker has reported its listeners open.
      assert.match(notify.messages[ready]!, workers > 1 ? /^STATUS=serving with 2 workers$/m : /^STATUS=serving$/m);
      await until(
        () => gh.lines.filter((line) => line.includes('"msg":"listening"')).length === workers,
        'every worker logged its listeners',
      );
      assert.deepEqual(notify.messages.slice(0, ready), [], 'nothing before READY=1');
      const started = JSON.parse(
        gh.lines.find((line) => /"msg":"(primary started|listening)"/.test(line) && line.includes('"metrics"'))!,
      ) as { metrics: string };
      const metricsPort = Number(started.metrics.split(':').pop());

      // A valid reload: RELOADING=1 with the monotonic time it began, then READY=1 once it is over.
      const before = process.hrtime.bigint() / 1000n;
      gh.child.kill('SIGHUP');
      const reloading = await message(notify.messages, ready + 1, /^RELOADING=1$/m);
      const usec = BigInt(/^MONOTONIC_USEC=(\d+)$/m.exec(notify.messages[reloading]!)?.[1] ?? -1);
      assert.ok(usec >= before && usec <= process.hrtime.bigint() / 1000n, `MONOTONIC_USEC ${usec} is CLOCK_MONOTONIC`);
      const readyAgain = await message(notify.messages, reloading + 1, /^READY=1$/m);
      assert.match(notify.messages[readyAgain]!, /^STATUS=serving; last reload: success$/m);
      await until(
        async () => sample((await scrape(metricsPort)).body, 'gatehouse_reloads_total{outcome="success"}') === 1,
        'gatehouse_reloads_total{outcome="success"} = 1',
      );

      // A broken configuration: refused, still RELOADING=1 then READY=1 (the running one serves), counted.
      fs.appendFileSync(path.join(dir, 'gatehouse.toml'), '\n[nonsense]\n');
      gh.child.kill('SIGHUP');
      const refused = await message(notify.messages, readyAgain + 1, /^RELOADING=1$/m);
      const readyThird = await message(notify.messages, refused + 1, /^READY=1$/m);
      assert.match(notify.messages[readyThird]!, /last reload: invalid_config$/m);
      const text = (await scrape(metricsPort)).body;
      assert.equal(sample(text, 'gatehouse_reloads_total{outcome="invalid_config"}'), 1);
      assert.equal(sample(text, 'gatehouse_reloads_total{outcome="success"}'), 1);
      assert.equal(sample(text, 'gatehouse_reloads_total{outcome="failed"}'), 0);
      assert.equal((await request(port, { ca: ca.caPem, servername: 'app.test' })).status, 200);

      gh.child.kill('SIGTERM');
      const [code] = await once(gh.child, 'close');
      assert.equal(code, 0);
      await message(notify.messages, readyThird + 1, /^STOPPING=1$/m);
      assert.equal(notify.messages.filter((m) => /^READY=1$/m.test(m)).length, 3, JSON.stringify(notify.messages));
    },
  );

test('without NOTIFY_SOCKET nothing is sent and serve runs as before', async (t) => {
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  const dir = writeConfig({ sites: { app: siteToml(['app.test'], cert, backend.url) } });
  const gh = spawnGatehouse(['serve', '--config', dir], undefined, undefined, { NOTIFY_SOCKET: '' });
  t.after(() => {
    if (gh.child.exitCode === null) gh.child.kill('SIGKILL');
  });
  await gh.waitFor(/"msg":"listening"/, WAIT_MS);
  gh.child.kill('SIGHUP');
  await gh.waitFor(/"msg":"reloaded"/);
  gh.child.kill('SIGTERM');
  const [code] = await once(gh.child, 'close');
  assert.equal(code, 0);
  assert.ok(!gh.lines.some((line) => line.includes('could not notify systemd')), gh.lines.join('\n'));
});
