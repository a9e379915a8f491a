// [store] backend = "redis" vs "local" on the hot path: one authenticated HTTPS/1.1 keep-alive GET on a cached session,
// the same load on two `gatehouse serve` processes (one per backend) in the same run, rounds interleaved. Reports the
// server CPU time per request (from /proc/<pid>/stat) and the client-side latency. Not part of `npm run bench`:
// `./node_modules/.bin/node bench/store-backends.ts [rounds] [requests per round]`.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Pool } from 'undici';
import { Browser, opAuth, toml, writeAuthConfig } from '../test/harness/gatehouse-auth.ts';
import { startOP } from '../test/harness/op.ts';
import { startRedis } from '../test/harness/redis.ts';
import { spawnGatehouse } from '../test/harness/spawn-gatehouse.ts';
import { freePort as closedPort } from '../test/harness/net.ts';

const ROUNDS = Number(process.argv[2] ?? 6);
const REQUESTS = Number(process.argv[3] ?? 3000);
const CONNECTIONS = 10;
const TICK_MS = 10; // USER_HZ = 100 on Linux

const redis = await startRedis();
const upstream = http.createServer((_req, res) => res.end('ok'));
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
const ports = { local: await closedPort(), redis: await closedPort() };
const op = await startOP({
  redirectUris: Object.values(ports).map((port) => `https://app.test:${port}/oauth2/callback`),
});

const systems = await Promise.all(
  (['local', 'redis'] as const).map(async (backend) => {
    const port = ports[backend];
    const dir = writeAuthConfig({
      port,
      sites: [
        {
          names: ['app.test'],
          upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
          auth: {
            ...opAuth(op.issuer),
            email_domains: ['*'],
            pass_access_token: true,
            redirect_url: `https://app.test:${port}/oauth2/callback`,
          },
        },
      ],
    });
    const file = path.join(dir, 'gatehouse.toml');
    let main = fs.readFileSync(file, 'utf8').replace(/\[metrics\]\nlisten = .*\n/, '');
    main = main.replace('[log]\nlevel = "info"', '[log]\nlevel = "info"\naccess_log = false');
    if (backend === 'redis') main += `[store]\n${toml({ backend: 'redis', url: redis.url })}\n`;
    fs.writeFileSync(file, main);
    const gh = spawnGatehouse(['serve', '--config', dir]);
    await gh.waitFor(/"msg":"listening"/);
    const caPem = fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8');
    const browser = new Browser(caPem);
    await browser.navigate(`https://app.test:${port}/`, 'alice');
    const cookie = browser.sessionCookie(`https://app.test:${port}`)!.join('=');
    const pool = new Pool(`https://127.0.0.1:${port}`, {
      connections: CONNECTIONS,
      connect: { ca: caPem, servername: 'app.test' },
    });
    return { backend, gh, pool, cookie, port, cpuMs: 0, latencies: [] as number[], requests: 0 };
  }),
);

function cpuTicks(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

async function round(system: (typeof systems)[number], count: number, record: boolean): Promise<void> {
  const before = cpuTicks(system.gh.child.pid!);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const start = performance.now();
      const { statusCode, body } = await system.pool.request({
        method: 'GET',
        path: '/x',
        headers: { host: `app.test:${system.port}`, cookie: system.cookie, accept: 'application/json' },
      });
      await body.text();
      if (statusCode !== 200) throw new Error(`${system.backend}: ${statusCode}`);
      if (record) system.latencies.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  if (record) {
    system.cpuMs += (cpuTicks(system.gh.child.pid!) - before) * TICK_MS;
    system.requests += count;
  }
}

for (const system of systems) await round(system, 1000, false); // warm-up
for (let r = 0; r < ROUNDS; r++)
  for (const system of r % 2 ? [...systems].reverse() : systems) await round(system, REQUESTS, true);

const pct = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) * p)]!;
console.log(`| backend | requests | server CPU µs/request | latency mean ms | p50 ms | p99 ms |`);
console.log(`|---|---|---|---|---|---|`);
for (const s of systems) {
  const mean = s.latencies.reduce((a, b) => a + b, 0) / s.latencies.length;
  console.log(
    `| ${s.backend} | ${s.requests} | ${((s.cpuMs * 1000) / s.requests).toFixed(1)} | ${mean.toFixed(3)} | ${pct(s.latencies, 0.5).toFixed(3)} | ${pct(s.latencies, 0.99).toFixed(3)} |`,
  );
}
console.log(
  `Redis commands during the run: ${(await redis.command('INFO', 'commandstats')).match(/cmdstat_\w+:calls=\d+/g)?.join(' ')}`,
);

for (const s of systems) {
  await s.pool.close();
  s.gh.child.kill('SIGTERM');
}
await op.close();
upstream.close();
await redis.stop();
