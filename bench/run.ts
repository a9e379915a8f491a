// `npm run bench [-- <scenario>...] [--reps N] [--seconds S] [--warmup S] [--systems a,b] [--smoke] [--gatehouse-binary] [--baseline <checkout>] [--node-options='<flags>']`
// Starts an upstream, Gatehouse and its peers on loopback with equivalent generated configurations, drives each
// with the same load generator, interleaving systems and repeating, and writes results.md / results.json /
// ratios.svg into bench/results/<time>/. Method: bench/README.md (pinned core, CPU µs per request).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SESSION_COOKIE, siteNames, writeCertificates } from './lib/configs.ts';
import { runLoad } from './lib/load.ts';
import { machineDescription, measureStartup } from './lib/machine.ts';
import { cpuMicros, layoutDescription, peakRssBytes, setLayout } from './lib/procs.ts';
import { markdown, summarize, svg } from './lib/report.ts';
import { missingPackage, ROOT, startBackend, startSystem } from './lib/systems.ts';
import { SYSTEM_NAMES, type Sample, type Scenario, type SystemName } from './lib/types.ts';

const SCENARIOS = path.join(ROOT, 'bench', 'scenarios');

export interface BenchOptions {
  scenarios: string[];
  reps: number;
  seconds: number;
  warmup: number;
  systems: SystemName[];
  out: string;
  log(line: string): void;
  gatehouseBinary?: string;
  /** A checkout (e.g. `git archive` of the commit before a change) whose src/ runs as gatehouse-baseline. */
  baselineRoot?: string;
  /** Node/V8 flags for `gatehouse` only (not the baseline), e.g. to measure heap settings against `--baseline .`. */
  nodeOptions?: string;
  /** Run everything on one core (the smoke test, beside other test files). */
  oneCore?: boolean;
}

export async function loadScenarios(names: readonly string[]): Promise<Scenario[]> {
  const available = fs
    .readdirSync(SCENARIOS)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -3))
    .sort();
  const unknown = names.filter((name) => !available.includes(name));
  if (unknown.length) throw new Error(`unknown scenario ${unknown.join(', ')}; available: ${available.join(', ')}`);
  const chosen = names.length ? names : available;
  return Promise.all(
    chosen.map(async (name) => ((await import(path.join(SCENARIOS, `${name}.ts`))) as { default: Scenario }).default),
  );
}

export async function bench(o: BenchOptions): Promise<{ samples: Sample[]; dir: string }> {
  const scenarios = await loadScenarios(o.scenarios);
  setLayout(o.oneCore ? 'one-core' : 'split');
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-'));
  fs.chmodSync(runDir, 0o755); // nginx workers run as an unprivileged user and read the 1 MB file from here
  const certDir = path.join(runDir, 'certs');
  const maxNames = Math.max(...scenarios.map((s) => s.names ?? 1));
  await writeCertificates(certDir, siteNames(maxNames));
  const machine = machineDescription();
  o.log(machine.text);
  const startup = o.gatehouseBinary ? await measureStartup(o.gatehouseBinary, runDir, certDir) : undefined;
  if (startup)
    o.log(
      `gatehouse binary: ${startup.sizeMb.toFixed(1)} MB, start to first served request ${startup.ms.toFixed(0)} ms`,
    );

  const missing = o.systems.filter((system) => missingPackage(system));
  for (const system of missing)
    o.log(`skipping ${system}: not installed (apt-get install ${missingPackage(system)}, or npm run setup)`);
  const samples: Sample[] = [];
  try {
    for (const scenario of scenarios) {
      const wanted = [
        ...scenario.systems,
        ...(scenario.systems.includes('gatehouse')
          ? (['gatehouse-baseline', 'node-undici-https', 'node-undici-h2compat'] as const)
          : []),
      ];
      const systems = (['nginx', ...wanted] as SystemName[]).filter(
        (s, i, all) => all.indexOf(s) === i && o.systems.includes(s) && !missing.includes(s),
      );
      const names = siteNames(scenario.names ?? 1);
      const backend = await startBackend(scenario.backend, runDir);
      try {
        for (let rep = 0; rep < o.reps; rep++) {
          // Interleaved: every repetition runs each system once, starting one further along (A B C, B C A, ...).
          const order = systems.map((_, i) => systems[(i + rep) % systems.length]!);
          for (const system of order) {
            // One failing system (a crash, a config it rejects) is reported and the others still run.
            try {
              samples.push(await measure(o, scenario, system, rep, { runDir, certDir, names, backend }));
            } catch (error) {
              o.log(`${scenario.name} #${rep + 1} ${system}: FAILED: ${(error as Error).message}`);
            }
          }
        }
      } finally {
        await backend.stop();
        await scenario.teardown?.();
      }
    }
  } finally {
    if (!process.env.BENCH_KEEP) fs.rmSync(runDir, { recursive: true, force: true });
  }
  const rows = summarize(samples);
  const titles = Object.fromEntries(scenarios.map((s) => [s.name, s.title]));
  fs.mkdirSync(o.out, { recursive: true });
  const settings = `${o.reps} repetition(s) × ${o.seconds} s (+ ${o.warmup} s warm-up), systems interleaved, ${layoutDescription()}`;
  fs.writeFileSync(
    path.join(o.out, 'results.md'),
    `# Gatehouse load bench\n\n${machine.text}\n${startup ? `Gatehouse binary: ${startup.sizeMb.toFixed(1)} MB, start to first served request ${startup.ms.toFixed(0)} ms.\n` : ''}\n${settings}.\n\n${markdown(rows, titles)}`,
  );
  fs.writeFileSync(
    path.join(o.out, 'results.json'),
    `${JSON.stringify({ machine: machine.facts, startup, settings, rows, samples }, null, 2)}\n`,
  );
  fs.writeFileSync(path.join(o.out, 'ratios.svg'), svg(rows));
  return { samples, dir: o.out };
}

interface Context {
  runDir: string;
  certDir: string;
  names: string[];
  backend: Awaited<ReturnType<typeof startBackend>>;
}

async function measure(
  o: BenchOptions,
  scenario: Scenario,
  system: SystemName,
  rep: number,
  c: Context,
): Promise<Sample> {
  const running = await startSystem(system, {
    dir: path.join(c.runDir, `${scenario.name}-${rep}`),
    certDir: c.certDir,
    names: c.names,
    upstreamPort: c.backend.port,
    scenario,
    gatehouseBinary: o.gatehouseBinary,
    baselineRoot: o.baselineRoot,
    gatehouseNodeOptions: o.nodeOptions,
  });
  try {
    const target = { system, port: running.port, names: c.names, dir: c.runDir, systemDir: running.dir };
    const prepared = (await scenario.prepare?.(target)) ?? {};
    const headers = { cookie: SESSION_COOKIE, ...prepared.headers };
    if (o.warmup > 0) await runLoad(scenario.load, target, o.warmup, headers, prepared.cookies);
    const pids = running.pids();
    const [cpuBefore, connsBefore, started] = [
      cpuMicros(pids),
      await c.backend.acceptedConnections(),
      performance.now(),
    ];
    const result = await runLoad(scenario.load, target, o.seconds, headers, prepared.cookies);
    const wallUs = (performance.now() - started) * 1000;
    const cpu = cpuMicros(pids) - cpuBefore;
    const connsAfter = await c.backend.acceptedConnections();
    const sample: Sample = {
      scenario: scenario.name,
      system,
      rep,
      ...result,
      rps: result.requests / result.seconds,
      cpuUsPerReq: result.requests > 0 ? cpu / result.requests : NaN,
      busy: cpu / wallUs,
      peakRssMb: peakRssBytes(pids) / 1e6,
      // minus 1: the status request itself is a new connection
      upstreamConns: connsBefore !== undefined && connsAfter !== undefined ? connsAfter - connsBefore - 1 : undefined,
    };
    o.log(
      `${scenario.name} #${rep + 1} ${system}: ${Math.round(sample.rps)} rps, ${sample.cpuUsPerReq.toFixed(0)} µs/req, p99 ${sample.p99Ms?.toFixed(2) ?? '–'} ms, busy ${(sample.busy * 100).toFixed(0)} %, ${sample.peakRssMb.toFixed(0)} MB, ${sample.errors} errors`,
    );
    return sample;
  } finally {
    await running.stop();
  }
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      reps: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      systems: { type: 'string' },
      smoke: { type: 'boolean' },
      'gatehouse-binary': { type: 'boolean' },
      out: { type: 'string' },
      baseline: { type: 'string' },
      'node-options': { type: 'string' },
    },
  });
  const smoke = values.smoke ?? false;
  const defaults: SystemName[] = smoke
    ? ['nginx', 'gatehouse']
    : ['nginx', 'gatehouse', 'nginx-auth', 'caddy', ...(values.baseline ? ['gatehouse-baseline' as const] : [])];
  const systems = (values.systems?.split(',') ?? defaults) as SystemName[];
  const bad = systems.filter((s) => !SYSTEM_NAMES.includes(s));
  if (bad.length) throw new Error(`unknown system ${bad.join(', ')}; known: ${SYSTEM_NAMES.join(', ')}`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const { dir } = await bench({
    scenarios: positionals,
    systems,
    log: (line) => process.stdout.write(`${line}\n`),
    reps: Number(values.reps ?? (smoke ? 1 : 5)),
    seconds: Number(values.seconds ?? (smoke ? 1 : 10)),
    warmup: Number(values.warmup ?? (smoke ? 0 : 2)),
    gatehouseBinary: values['gatehouse-binary'] ? path.join(ROOT, 'dist', 'gatehouse') : undefined,
    out: values.out ?? path.join(ROOT, 'bench', 'results', stamp),
    baselineRoot: values.baseline ? path.resolve(values.baseline) : undefined,
    nodeOptions: values['node-options'],
    oneCore: smoke,
  });
  process.stdout.write(
    `\n${fs.readFileSync(path.join(dir, 'results.md'), 'utf8')}\nwritten: ${path.relative(process.cwd(), dir)}/results.{md,json} and ratios.svg\n`,
  );
}
