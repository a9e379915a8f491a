// `npm run bench:profile [-- <scenario>] [--seconds S] [--system node-undici-https]`: runs Gatehouse (from source; or
// a reference forwarder, to compare) under one scenario's load with
// --cpu-prof and prints where its CPU goes: self time by function and by package. The .cpuprofile (open it in
// Chrome DevTools or speedscope for a flame graph) is kept in bench/results/.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SESSION_COOKIE, siteNames, writeCertificates } from './lib/configs.ts';
import { runLoad } from './lib/load.ts';
import { loadScenarios } from './run.ts';
import { ROOT, startBackend, startSystem } from './lib/systems.ts';
import type { SystemName } from './lib/types.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { seconds: { type: 'string' }, top: { type: 'string' }, system: { type: 'string', default: 'gatehouse' } },
});
const [scenario] = await loadScenarios([positionals[0] ?? 'h1-keepalive']);
const seconds = Number(values.seconds ?? 10);
const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-profile-'));
fs.chmodSync(runDir, 0o755);
const out = path.join(
  ROOT,
  'bench',
  'results',
  `profile-${scenario!.name}-${new Date().toISOString().replace(/[:.]/g, '-')}`,
);
fs.mkdirSync(out, { recursive: true });
const names = siteNames(scenario!.names ?? 1);
await writeCertificates(path.join(runDir, 'certs'), names);
const backend = await startBackend(scenario!.backend, runDir);
try {
  const system = values.system as SystemName;
  const running = await startSystem(system, {
    dir: path.join(runDir, system),
    certDir: path.join(runDir, 'certs'),
    names,
    upstreamPort: backend.port,
    scenario: scenario!,
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${out}`],
  });
  const target = { system, port: running.port, names, dir: runDir, systemDir: running.dir };
  // The same request headers as in a bench run (a scenario's prepare may log in and return a session cookie).
  const prepared = (await scenario!.prepare?.(target)) ?? {};
  const headers = { cookie: SESSION_COOKIE, ...prepared.headers };
  await runLoad(scenario!.load, target, 2, headers, prepared.cookies);
  const result = await runLoad(scenario!.load, target, seconds, headers, prepared.cookies);
  await running.stop(20_000); // SIGTERM: the graceful exit writes the profile
  process.stdout.write(
    `${scenario!.name}: ${Math.round(result.requests / result.seconds)} rps during the profiled run (profiling adds overhead)\n`,
  );
} finally {
  await backend.stop();
  await scenario!.teardown?.();
  fs.rmSync(runDir, { recursive: true, force: true });
}

const file = fs.readdirSync(out).find((f) => f.endsWith('.cpuprofile'));
if (!file) throw new Error(`no .cpuprofile written in ${out}`);
const profile = JSON.parse(fs.readFileSync(path.join(out, file), 'utf8')) as Profile;
const total = profile.endTime - profile.startTime;
const byNode = new Map<number, number>();
profile.samples.forEach((id, i) => byNode.set(id, (byNode.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const byFunction = new Map<string, number>();
const byPackage = new Map<string, number>();
for (const node of profile.nodes) {
  const self = byNode.get(node.id) ?? 0;
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url.replace(/^file:\/\//, '').replace(`${ROOT}/`, '');
  byFunction.set(
    `${functionName || '(anonymous)'} ${where ? `${where}:${lineNumber + 1}` : ''}`.trim(),
    (byFunction.get(`${functionName || '(anonymous)'} ${where ? `${where}:${lineNumber + 1}` : ''}`.trim()) ?? 0) +
      self,
  );
  const pkg =
    /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(where)?.[1] ??
    (where.startsWith('src/')
      ? `gatehouse ${where.split('/').slice(0, 2).join('/')}`
      : where.startsWith('node:')
        ? 'node internals (JS)'
        : where
          ? where
          : functionName.startsWith('(')
            ? functionName
            : 'native / V8 builtins');
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + self);
}
const top = Number(values.top ?? 25);
const table = (title: string, map: Map<string, number>) =>
  `${title}\n${[...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => `${((us / total) * 100).toFixed(1).padStart(5)} %  ${name}`)
    .join('\n')}\n`;
const report = `${table('Self time by package / area (share of the profiled wall time):', byPackage)}\n${table('Self time by function:', byFunction)}`;
fs.writeFileSync(path.join(out, 'summary.txt'), report);
process.stdout.write(`${report}\nprofile: ${path.relative(process.cwd(), path.join(out, file))}\n`);
