// The proof with real processes: three `gatehouse serve` processes on one redis-server, HAProxy (TCP, round-robin)
// in front, a real oidc-provider. Through the balancer: a login on one instance is a session on all three; a logout
// is refused on all three; 50 parallel requests with an expired access token make one refresh at the provider and
// none carries the expired token upstream; kill -9 of the instance holding the refresh lease: another completes the
// refresh; Redis frozen (SIGSTOP) then restarted: the cached sessions keep working, nothing is lost, all recovers.
// The figures (logout propagation, outage timeline) are reported as test diagnostics, never asserted as timings.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { Browser, freePort, opAuth, toml, writeAuthConfig } from '../harness/gatehouse-auth.ts';
import { startOP } from '../harness/op.ts';
import { startRedis } from '../harness/redis.ts';
import { spawnGatehouse } from '../harness/spawn-gatehouse.ts';
import { until, within } from '../harness/wait.ts';

const API = { accept: 'application/json', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' };
const ACCESS_TOKEN_TTL_S = 4;

test(
  'three instances behind HAProxy on one Redis: shared login and logout, one refresh for a storm, lease takeover after kill -9, Redis frozen and restarted',
  { timeout: 300_000 },
  async (t) => {
    const redis = await startRedis();
    t.after(() => redis.stop());

    // The upstream records every access token it is sent.
    const received: string[] = [];
    const upstream = http.createServer((req, res) => {
      received.push(String(req.headers['x-forwarded-access-token']));
      res
        .writeHead(200, { 'content-type': 'application/json', 'x-request-id': String(req.headers['x-request-id']) })
        .end('{}');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => upstream.close(() => resolve())));

    const front = await freePort();
    const origin = `https://app.test:${front}`;
    const op = await startOP({
      redirectUris: [`${origin}/oauth2/callback`],
      postLogoutRedirectUris: [`${origin}/`],
      accessTokenTtl: ACCESS_TOKEN_TTL_S,
    });
    t.after(() => op.close());

    // Three config folders: same site, same cookie secret, same Redis; each its own port.
    const ports = [await freePort(), await freePort(), await freePort()];
    const site = {
      names: ['app.test'],
      upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      auth: {
        ...opAuth(op.issuer),
        email_domains: ['*'],
        pass_access_token: true,
        redirect_url: `${origin}/oauth2/callback`,
      },
    };
    const first = writeAuthConfig({ sites: [site], port: ports[0] });
    const dirs = ports.map((port, i) => {
      const dir = i === 0 ? first : fs.mkdtempSync(`${first}-${i}`);
      if (i > 0)
        for (const file of ['srv.pem', 'srv.key', 'ca.pem'])
          fs.copyFileSync(path.join(first, file), path.join(dir, file));
      writeAuthConfig({ sites: [site], port, dir });
      // Debug level: each instance logs when it refreshes at the provider. No [metrics] listener needed here.
      const main = fs
        .readFileSync(path.join(dir, 'gatehouse.toml'), 'utf8')
        .replace('level = "info"', 'level = "debug"')
        .replace(/\[metrics\]\nlisten = .*\n/, '');
      fs.writeFileSync(
        path.join(dir, 'gatehouse.toml'),
        `${main}[store]\n${toml({ backend: 'redis', url: redis.url, command_timeout: '300ms', grace: '5m' })}\n`,
      );
      return dir;
    });
    const caPem = fs.readFileSync(path.join(first, 'ca.pem'), 'utf8');
    const instances = dirs.map((dir) => spawnGatehouse(['serve', '--config', dir]));
    t.after(() => {
      for (const gh of instances)
        if (gh.child.exitCode === null && gh.child.signalCode === null) gh.child.kill('SIGKILL');
    });
    await Promise.all(instances.map((gh) => gh.waitFor(/"msg":"listening"/)));

    // HAProxy in TCP mode: TLS passes through; each new connection goes to the next instance.
    const cfg = path.join(first, 'haproxy.cfg');
    fs.writeFileSync(
      cfg,
      [
        'global',
        '  maxconn 512',
        'defaults',
        '  mode tcp',
        '  timeout connect 2s',
        '  timeout client 60s',
        '  timeout server 60s',
        '  retries 3',
        '  option redispatch',
        'frontend gatehouse',
        `  bind 127.0.0.1:${front}`,
        '  default_backend instances',
        'backend instances',
        '  balance roundrobin',
        ...ports.map((port, i) => `  server g${i} 127.0.0.1:${port} check inter 300 fall 1 rise 1`),
        '',
      ].join('\n'),
    );
    const haproxy: ChildProcess = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let haproxyLog = '';
    haproxy.stderr!.on('data', (d) => (haproxyLog += d));
    t.after(() => {
      if (haproxy.exitCode === null) haproxy.kill('SIGKILL');
    });

    const browser = new Browser(caPem);
    await until(
      async () => (await browser.request(`${origin}/`).catch(() => undefined))?.status === 302,
      () => `HAProxy forwards to the instances\n${haproxyLog}`,
    );
    /** Which instance served a request: the one whose log has its request id. */
    const servedBy = async (requestId: string) => {
      let found = -1;
      await until(
        () =>
          (found = instances.findIndex((gh) => gh.lines.some((line) => line.includes(`"req_id":"${requestId}"`)))) >= 0,
        `the log line of ${requestId}`,
      );
      return found;
    };
    const get = (cookie: string) =>
      browser.request(`${origin}/x`, { headers: { ...API, cookie } }).catch((error: Error) => ({
        status: 0,
        headers: {} as http.IncomingHttpHeaders,
        error,
      }));
    const login = async (user: string) => {
      const b = new Browser(caPem);
      assert.equal((await b.navigate(`${origin}/`, user)).status, 200);
      return b.sessionCookie(origin)!.join('=');
    };

    // 1. Logged in through one instance, the session serves on all three.
    const alice = await login('alice');
    const loggedInAt = Date.now();
    const servers = new Set<number>();
    for (let i = 0; i < 9; i++) {
      const reply = await get(alice);
      assert.equal(reply.status, 200);
      servers.add(await servedBy(String(reply.headers['x-request-id'])));
    }
    assert.deepEqual([...servers].sort(), [0, 1, 2], 'every instance served the session');
    const loginToken = received.at(-1)!;

    // 2. The access token expires while the session idles; 50 parallel requests across the three: one refresh.
    await until(() => Date.now() > loggedInAt + ACCESS_TOKEN_TTL_S * 1000 + 200, 'the access token has expired');
    const grants = op.refreshGrants();
    const seen = received.length;
    const storm = await Promise.all(Array.from({ length: 50 }, () => get(alice)));
    assert.deepEqual(new Set(storm.map((r) => r.status)), new Set([200]));
    assert.equal(op.refreshGrants() - grants, 1, 'exactly one refresh at the provider');
    const stormTokens = received.slice(seen);
    assert.equal(stormTokens.length, 50);
    assert.equal(stormTokens.includes(loginToken), false, 'no request carried the expired token upstream');
    t.diagnostic(`refresh storm: 50 requests over 3 instances, ${op.refreshGrants() - grants} refresh at the provider`);

    // 3. The instance holding the refresh lease dies mid-refresh (kill -9): another takes the lease over and refreshes.
    const refreshedAt = Date.now();
    await until(() => Date.now() > refreshedAt + ACCESS_TOKEN_TTL_S * 1000 + 200, 'the new access token has expired');
    op.tokenDelayMs = 120_000; // the provider answers the first refresh too late for its holder
    const before = instances.map((gh) => gh.lines.filter((l) => l.includes('refreshing the session')).length);
    const pending = Array.from({ length: 6 }, () => get(alice));
    let holder = -1;
    await until(
      () =>
        (holder = instances.findIndex(
          (gh, i) => gh.lines.filter((l) => l.includes('refreshing the session')).length > before[i]!,
        )) >= 0,
      'an instance refreshing',
    );
    const grantsBeforeKill = op.refreshGrants();
    op.tokenDelayMs = 0;
    instances[holder]!.child.kill('SIGKILL');
    await within(new Promise((resolve) => instances[holder]!.child.once('exit', resolve)), 'the holder dies');
    await Promise.all(pending);
    await until(async () => (await get(alice)).status === 200, 'the session serves after the takeover');
    const survivors = [0, 1, 2].filter((i) => i !== holder);
    const takeover = survivors.filter(
      (i) => instances[i]!.lines.filter((l) => l.includes('refreshing the session')).length > before[i]!,
    );
    assert.equal(takeover.length, 1, 'one surviving instance completed the refresh');
    assert.ok(op.refreshGrants() > grantsBeforeKill, 'the takeover refreshed at the provider');
    assert.notEqual(received.at(-1), loginToken);

    // 4. Logout through one instance: refused on every surviving instance (asked directly, not through HAProxy).
    const direct = (i: number, cookie: string) =>
      browser.request(`https://app.test:${ports[i]}/x`, { headers: { ...API, cookie } });
    const signOut = await browser.request(`${origin}/oauth2/sign_out`, { headers: { ...API, cookie: alice } });
    assert.equal(signOut.status, 302);
    const signedOutAt = Date.now();
    const refusedAt: number[] = [];
    for (const i of survivors) {
      await until(async () => (await direct(i, alice)).status === 401, `instance ${i} refuses the signed-out session`);
      refusedAt.push(Date.now() - signedOutAt);
    }
    t.diagnostic(
      `logout propagation: refused on every instance ${Math.max(...refusedAt)} ms after the sign-out answer`,
    );

    // 5. Redis frozen, then restarted: the cached sessions keep working; nothing is lost; it all recovers.
    op.accessTokenTtl = 3600; // the outage is about the store, not about a token expiring meanwhile
    const bob = await login('bob');
    for (const i of survivors) assert.equal((await direct(i, bob)).status, 200, 'cached on every instance');
    const keys = await redis.command('DBSIZE');
    redis.pause();
    const outage = { served: 0, failed: 0 };
    const frozenAt = Date.now();
    await until(
      () =>
        survivors.every((i) =>
          instances[i]!.lines.some((l) => l.includes('session store unreachable') && JSON.parse(l).time > frozenAt),
        ),
      'every instance notices the frozen Redis',
    );
    // Past the 5 s revalidation interval: the cached copies are due for a look at the store, which does not answer.
    while (Date.now() < frozenAt + 6_000 || outage.served + outage.failed < 20) {
      const reply = await get(bob);
      if (reply.status === 200) outage.served++;
      else outage.failed++;
    }
    await redis.restart();
    const restartedAt = Date.now();
    await until(
      () =>
        survivors.every((i) =>
          instances[i]!.lines.some((l) => l.includes('session store reachable') && JSON.parse(l).time > frozenAt),
        ),
      'every instance reconnected',
    );
    const recoveredMs = Date.now() - restartedAt;
    for (let i = 0; i < 6; i++) assert.equal((await get(bob)).status, 200, 'bob is still signed in');
    assert.equal(await redis.command('DBSIZE'), keys, 'nothing was lost');
    // A login after the recovery works too.
    const carol = await login('carol');
    assert.equal((await get(carol)).status, 200);
    assert.equal(outage.failed, 0, 'cached sessions were served throughout the outage');
    t.diagnostic(
      `redis outage: ${outage.served} requests served, ${outage.failed} failed while frozen; reconnected ${recoveredMs} ms after the restart`,
    );
  },
);
