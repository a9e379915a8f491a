// `npm run bench [-- <scenario>...] [--reps N] [--seconds S] [--warmup S] [--systems a,b] [--smoke] [--gatehouse-binary]
//   [--baseline <git-ref or checkout>] [--node-options='<flags>'] [--rate <rps>] [--max-foreign-load <% of a core>]`
// Starts an upstream, Gatehouse and its peers on loopback with equivalent generated configurations, drives each
// with the same load generator, interleaving systems and repeating, and writes results.md / results.json /
// ratios.svg into bench/results/<time>/. Method: bench/README.md (pinned core, CPU µs per request, foreign load).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SESSION_COOKIE, siteNames, writeCertificates } from './lib/configs.ts';
import { overran, runLoad } from './lib/load.ts';
import { machineDescription, measureStartup } from './lib/machine.ts';
import { checkSample } from './lib/check.ts';
import {
  coresBusyMicros,
  cpuMicros,
  harnessMicros,
  layoutDescription,
  measuredCores,
  peakRssBytes,
  processTree,
  rssBytes,
  setLayout,
} from './lib/procs.ts';
import { foreignLoadSummary, markdown, summarize, svg } from './lib/report.ts';
import { missingPackage, ROOT, startBackend, startSystem } from './lib/systems.ts';
import {
  REFERENCE_SYSTEMS,
  SYSTEM_NAMES,
  unsupported,
  type LoadResult,
  type LoadSpec,
  type Sample,
  type Scenario,
  type SystemName,
} from './lib/types.ts';

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
  /**
   * gatehouse-baseline, reported as gatehouse@<ref>: a git ref of this repository (exported with `git archive` into a
   * temporary folder, node_modules linked) or a checkout folder (a folder of that name wins over a ref).
   */
  baseline?: string;
  /** A window whose foreign load is above this (% of one core) is flagged and the run marked unpublishable. Default 10. */
  maxForeignLoad?: number;
  /** The open-loop scenarios' offered rate (requests per second) instead of calibrating against nginx-auth. */
  rate?: number;
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
  const maxForeignLoad = o.maxForeignLoad ?? 10;
  const baseline = o.baseline !== undefined ? exportBaseline(o.baseline) : undefined;
  if (baseline) o.log(`gatehouse-baseline: ${baseline.label} (${baseline.root})`);
  // Measure what ships on both sides: the current checkout's and the baseline's own single executable, each built
  // from its sources now (a dist/gatehouse left from an older build would measure other code).
  if (o.gatehouseBinary) buildBinary(ROOT, o.log);
  if (o.gatehouseBinary && baseline) baseline.binary = buildBinary(baseline.root, o.log);
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
  /** The open-loop rate, fixed once per run so that every open-loop scenario offers the same load. */
  let openLoop: { rate: number; source: string; calibration?: Sample } | undefined =
    o.rate !== undefined ? { rate: o.rate, source: '--rate' } : undefined;
  const settings = { maxForeignLoad, baselineLabel: baseline?.label };
  try {
    for (const scenario of scenarios) {
      const wanted = [
        ...scenario.systems,
        ...(scenario.systems.includes('gatehouse') ? (['gatehouse-baseline', ...REFERENCE_SYSTEMS] as const) : []),
      ];
      const systems = (['nginx', ...wanted] as SystemName[]).filter((s, i, all) => {
        if (all.indexOf(s) !== i || !o.systems.includes(s) || missing.includes(s)) return false;
        const reason = unsupported(s, scenario);
        if (reason) o.log(`${scenario.name}: skipping ${s} (${reason})`);
        return !reason;
      });
      const names = siteNames(scenario.names ?? 1);
      const backend = await startBackend(scenario.backend, runDir);
      const context = { runDir, certDir, names, backend, baseline, settings };
      try {
        if (scenario.openLoop && !openLoop) {
          if (missing.includes('nginx-auth') || missingPackage('nginx-auth'))
            throw new Error(`${scenario.name} calibrates against nginx-auth, which is not installed: pass --rate`);
          const calibration = await measure(o, scenario, 'nginx-auth', -1, context, scenario.openLoop.calibrate);
          const rate = Math.max(1, Math.round(calibration.rps * scenario.openLoop.share));
          openLoop = {
            rate,
            source: `${Math.round(scenario.openLoop.share * 100)} % of nginx-auth's saturated ${Math.round(calibration.rps)} rps (${describeLoad(scenario.openLoop.calibrate)}), same run`,
            calibration,
          };
          o.log(`open-loop rate: ${rate} rps = ${openLoop.source}`);
        }
        for (let rep = 0; rep < o.reps; rep++) {
          // Interleaved: every repetition runs each system once, starting one further along (A B C, B C A, ...).
          const order = systems.map((_, i) => systems[(i + rep) % systems.length]!);
          for (const system of order) {
            // One failing system (a crash, a config it rejects) is reported and the others still run.
            try {
              samples.push(
                await measure(
                  o,
                  scenario,
                  system,
                  rep,
                  context,
                  undefined,
                  scenario.openLoop ? openLoop?.rate : undefined,
                ),
              );
            } catch (error) {
              o.log(
                `${scenario.name} #${rep + 1} ${system === 'gatehouse-baseline' ? (baseline?.label ?? system) : system}: FAILED: ${(error as Error).message}`,
              );
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
    baseline?.cleanup();
  }
  const rows = summarize(samples, maxForeignLoad);
  const titles = Object.fromEntries(scenarios.map((s) => [s.name, s.title]));
  fs.mkdirSync(o.out, { recursive: true });
  const description = `${o.reps} repetition(s) × ${o.seconds} s (+ ${o.warmup} s warm-up), systems interleaved, ${layoutDescription()}; foreign load measured on core(s) ${measuredCores().join(', ')}, flagged above ${maxForeignLoad} % of a core`;
  const windows = [...samples, ...(openLoop?.calibration ? [openLoop.calibration] : [])];
  const verdict = foreignLoadSummary(windows, maxForeignLoad);
  o.log(verdict.text);
  const openLoopText = openLoop ? `Open-loop rate: ${openLoop.rate} rps, ${openLoop.source}.\n\n` : '';
  fs.writeFileSync(
    path.join(o.out, 'results.md'),
    `# Gatehouse load bench\n\n${verdict.text}\n\n${machine.text}\n${startup ? `Gatehouse binary: ${startup.sizeMb.toFixed(1)} MB, start to first served request ${startup.ms.toFixed(0)} ms.\n` : ''}\n${description}.\n\n${openLoopText}${markdown(rows, titles)}`,
  );
  fs.writeFileSync(
    path.join(o.out, 'results.json'),
    `${JSON.stringify({ machine: machine.facts, startup, settings: description, foreignLoad: verdict.facts, openLoop, rows, samples }, null, 2)}\n`,
  );
  fs.writeFileSync(path.join(o.out, 'ratios.svg'), svg(rows));
  return { samples, dir: o.out };
}

interface Context {
  runDir: string;
  certDir: string;
  names: string[];
  backend: Awaited<ReturnType<typeof startBackend>>;
  baseline: Baseline | undefined;
  settings: { maxForeignLoad: number };
}

function describeLoad(load: LoadSpec): string {
  return `${load.tool}, ${load.connections} connections`;
}

/**
 * One measured window of one system: the load (the scenario's, or `load` for a calibration; at `rate` for an
 * open-loop scenario), CPU per request, peak RSS, and the foreign load on the measured cores during the window.
 */
async function measure(
  o: BenchOptions,
  scenario: Scenario,
  system: SystemName,
  rep: number,
  c: Context,
  load: LoadSpec = scenario.load,
  rate?: number,
): Promise<Sample> {
  const { running, target, prepared, headers } = await startAnswering(o, scenario, system, rep, c);
  try {
    if (o.warmup > 0) await runLoad(load, target, o.warmup, headers, prepared.cookies, rate);
    const pids = running.pids();
    const connsBefore = await c.backend.acceptedConnections();
    const run = () =>
      measureWindow(pids, processTree(c.backend.proc.pid), () =>
        runLoad(load, target, o.seconds, headers, prepared.cookies, rate),
      );
    // A load generator that hung after its time says nothing about the system: the window is measured once more.
    const once = () =>
      run().catch((error: unknown) => {
        if (!overran(error)) throw error;
        o.log(`${scenario.name} #${rep + 1} ${system}: the load generator hung and was killed; measuring again`);
        return run();
      });
    // Neither does a window in which other work starved the system or the client of every request (short smoke
    // windows on a loaded machine): measured again, at most twice, and logged.
    let window = await once();
    for (let retry = 1; retry <= 2 && starved(window.result); retry++) {
      o.log(`${scenario.name} #${rep + 1} ${system}: no request completed with a latency figure; measuring again`);
      window = await once();
    }
    const { result, cpu, wallUs, foreignLoadPct, windowRssBytes } = window;
    const connsAfter = await c.backend.acceptedConnections();
    const label = system === 'gatehouse-baseline' ? (c.baseline?.label ?? system) : system;
    const sample: Sample = {
      scenario: scenario.name,
      system,
      label,
      rep,
      ...result,
      rps: result.requests / result.seconds,
      cpuUsPerReq: result.requests > 0 ? cpu / result.requests : NaN,
      busy: cpu / wallUs,
      peakRssMb: peakRssBytes(pids) / 1e6,
      windowRssMb: windowRssBytes / 1e6,
      foreignLoadPct,
      contended: foreignLoadPct > c.settings.maxForeignLoad,
      // minus 1: the status request itself is a new connection
      upstreamConns: connsBefore !== undefined && connsAfter !== undefined ? connsAfter - connsBefore - 1 : undefined,
    };
    o.log(
      `${scenario.name} ${rep < 0 ? 'calibration' : `#${rep + 1}`} ${label}: ${Math.round(sample.rps)} rps${rate ? ` (offered ${rate})` : ''}, ${sample.cpuUsPerReq.toFixed(0)} µs/req, p99 ${sample.p99Ms?.toFixed(2) ?? '–'} ms, busy ${(sample.busy * 100).toFixed(0)} %, RSS ${sample.windowRssMb.toFixed(0)} MB (process peak ${sample.peakRssMb.toFixed(0)}), ${sample.errors} errors, foreign load ${foreignLoadPct.toFixed(0)} % of a core${sample.contended ? ' ⚠ contended' : ''}`,
    );
    return sample;
  } finally {
    await running.stop();
  }
}

/** A connection-level failure: the port found free was taken by another process (a test beside the smoke) first. */
const PORT_TAKEN = new Set(['EPROTO', 'ECONNRESET', 'ECONNREFUSED']);

/**
 * Starts the system and checks one sample answer (after the scenario's preparation, e.g. a login). The port is found
 * free and then handed to the system, so another process can take it in between and answer in its place: such a start
 * is stopped and made again on another port (at most twice, logged); any other failure is the system's.
 */
async function startAnswering(o: BenchOptions, scenario: Scenario, system: SystemName, rep: number, c: Context) {
  for (let attempt = 1; ; attempt++) {
    const running = await startSystem(system, {
      dir: path.join(c.runDir, `${scenario.name}-${rep}${attempt > 1 ? `-${attempt}` : ''}`),
      certDir: c.certDir,
      names: c.names,
      upstreamPort: c.backend.port,
      scenario,
      gatehouseBinary: o.gatehouseBinary,
      baselineRoot: c.baseline?.root,
      baselineBinary: c.baseline?.binary,
      gatehouseNodeOptions: o.nodeOptions,
    });
    try {
      const target = { system, port: running.port, names: c.names, dir: c.runDir, systemDir: running.dir };
      const prepared = (await scenario.prepare?.(target)) ?? {};
      const headers = { cookie: SESSION_COOKIE, ...prepared.headers };
      await checkSample(scenario, target, prepared.cookies ? { ...headers, cookie: prepared.cookies[0]! } : headers);
      return { running, target, prepared, headers };
    } catch (error) {
      await running.stop();
      if (attempt > 2 || !PORT_TAKEN.has((error as NodeJS.ErrnoException).code ?? '')) throw error;
      o.log(`${scenario.name} #${rep + 1} ${system}: port ${running.port} answered wrong (${String(error)}); again`);
    }
  }
}

/** A window with no completed request or no latency percentiles. */
function starved(result: LoadResult): boolean {
  return !(result.requests > 0) || result.p50Ms === undefined || result.p99Ms === undefined;
}

/**
 * Runs `load` as the measured window. Foreign load: the busy time of the measured cores (/proc/stat) minus the CPU
 * of every process the harness started (the system, the upstream, the load generator, reaped into the harness's
 * children's time, and the harness itself), in % of one core over the window's wall time.
 */
async function measureWindow(
  pids: number[],
  backendPids: number[],
  load: () => Promise<LoadResult>,
): Promise<{ result: LoadResult; cpu: number; wallUs: number; foreignLoadPct: number; windowRssBytes: number }> {
  const cores = measuredCores();
  const own = () => cpuMicros(pids) + cpuMicros(backendPids) + harnessMicros();
  let windowRssBytes = rssBytes(pids);
  const sampler = setInterval(() => {
    windowRssBytes = Math.max(windowRssBytes, rssBytes(pids));
  }, 200);
  const [busyBefore, ownBefore, cpuBefore, started] = [
    coresBusyMicros(cores),
    own(),
    cpuMicros(pids),
    performance.now(),
  ];
  try {
    const result = await load();
    const wallUs = (performance.now() - started) * 1000;
    const [busyAfter, ownAfter, cpuAfter] = [coresBusyMicros(cores), own(), cpuMicros(pids)];
    windowRssBytes = Math.max(windowRssBytes, rssBytes(pids));
    const foreignLoadPct = ((busyAfter - busyBefore - (ownAfter - ownBefore)) / wallUs) * 100;
    return { result, cpu: cpuAfter - cpuBefore, wallUs, foreignLoadPct, windowRssBytes };
  } finally {
    clearInterval(sampler);
  }
}

interface Baseline {
  root: string;
  label: string;
  /** Its single executable, with --gatehouse-binary. */
  binary?: string;
  cleanup(): void;
}

/** `npm run build:binary` in a checkout; returns its dist/gatehouse. */
function buildBinary(root: string, log: (line: string) => void): string {
  log(`building the single executable of ${root}`);
  execFileSync(process.execPath, [path.join(root, 'src', 'cli', 'build-binary.ts')], { cwd: root, stdio: 'ignore' });
  return path.join(root, 'dist', 'gatehouse');
}

/** --baseline: a checkout folder as it is, or a git ref of this repository exported into a temporary folder. */
function exportBaseline(refOrDir: string): Baseline {
  if (fs.existsSync(refOrDir) && fs.statSync(refOrDir).isDirectory()) {
    const root = path.resolve(refOrDir);
    return { root, label: `gatehouse@${path.basename(root)}`, cleanup() {} };
  }
  let sha: string;
  try {
    sha = execFileSync('git', ['-C', ROOT, 'rev-parse', '--verify', '--quiet', `${refOrDir}^{commit}`], {
      encoding: 'utf8',
    }).trim();
  } catch {
    throw new Error(`--baseline ${refOrDir}: neither a folder nor a commit of this repository`);
  }
  // `git archive`, not `git worktree add`: it leaves the repository's shared worktree list alone, and an interrupted
  // run leaves at most a temporary folder.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-baseline-'));
  try {
    execFileSync('sh', ['-c', 'git -C "$1" archive "$2" | tar -x -C "$3"', 'sh', ROOT, sha, root]);
    fs.symlinkSync(fs.realpathSync(path.join(ROOT, 'node_modules')), path.join(root, 'node_modules'));
  } catch (error) {
    fs.rmSync(root, { recursive: true, force: true });
    throw error;
  }
  return {
    root,
    label: `gatehouse@${refOrDir}`,
    cleanup: () => fs.rmSync(root, { recursive: true, force: true }),
  };
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
      rate: { type: 'string' },
      'max-foreign-load': { type: 'string' },
    },
  });
  const smoke = values.smoke ?? false;
  const defaults: SystemName[] = smoke
    ? ['nginx', 'gatehouse']
    : ['nginx', 'gatehouse', 'nginx-auth', 'caddy', ...(values.baseline ? ['gatehouse-baseline' as const] : [])];
  const systems = (values.systems?.split(',') ?? defaults) as SystemName[];
  // --baseline compares with gatehouse: it joins a --systems list that names gatehouse.
  if (values.baseline && systems.includes('gatehouse') && !systems.includes('gatehouse-baseline'))
    systems.push('gatehouse-baseline');
  for (const [flag, value] of [
    ['--rate', values.rate],
    ['--max-foreign-load', values['max-foreign-load']],
  ] as const)
    if (value !== undefined && !(Number(value) > 0)) throw new Error(`${flag} wants a positive number, not ${value}`);
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
    baseline: values.baseline,
    nodeOptions: values['node-options'],
    rate: values.rate !== undefined ? Number(values.rate) : undefined,
    maxForeignLoad: values['max-foreign-load'] !== undefined ? Number(values['max-foreign-load']) : undefined,
    oneCore: smoke,
  });
  process.stdout.write(
    `\n${fs.readFileSync(path.join(dir, 'results.md'), 'utf8')}\nwritten: ${path.relative(process.cwd(), dir)}/results.{md,json} and ratios.svg\n`,
  );
}
