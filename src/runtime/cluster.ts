// `workers = N`: N serving processes share the listeners, like nginx's worker_processes. The primary only forks,
// restarts crashed workers and orders a graceful stop; every worker loads the config and serves on its own.
import cluster, { type Worker } from 'node:cluster';
import { isSea } from 'node:sea';
import http from 'node:http';
import type { ListenAddress } from '../config/schema.ts';
import { createHealthServer, runtimeReadiness, type Readiness } from '../observability/health.ts';
import type { Logger } from '../observability/logger.ts';
import { clusterMetrics, shareWithPrimary } from '../observability/metrics.ts';
import type { Runtime } from './runtime.ts';
import { requestStop, whenReloadRequested, whenStopRequested } from './process-signals.ts';
import { withV8Flags } from './v8-flags.ts';

const ACME_SCHEDULER_ENV = 'GATEHOUSE_ACME_SCHEDULER';
const STOP_MESSAGE = 'gatehouse:stop';
const LISTENING_MESSAGE = 'gatehouse:listening';
const READINESS_QUERY = 'gatehouse:readiness?';
const READINESS_ANSWER = 'gatehouse:readiness';
/** How long /ready waits for each worker's answer; a worker that does not answer in time is not ready. */
const READINESS_WAIT_MS = 2_000;
/** How long a reload waits for its new workers to listen before it gives up and keeps the old ones. */
const RELOAD_START_MS = 60_000;

export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/**
 * Whether this process runs the ACME renewal scheduler: a single process always; in a cluster exactly one worker
 * (the role passes to its replacement). The other workers serve what it stores (acme/watch.ts) and answer challenges.
 */
export function runsAcmeScheduler(): boolean {
  return !cluster.isWorker || process.env[ACME_SCHEDULER_ENV] === '1';
}

/**
 * In a worker, once it listens: tells the primary (a reload waits for this before it retires old workers), and
 * answers the primary's [metrics] listener: readiness over the cluster channel, metrics through prom-client's.
 */
export function reportListening(runtime: Runtime): void {
  if (!cluster.isWorker) return;
  if (runtime.metrics) shareWithPrimary(runtime.metrics);
  process.on('message', (message: { type?: string; id?: number }) => {
    if (message?.type === READINESS_QUERY) process.send?.({ type: READINESS_ANSWER, id: message.id, ...runtimeReadiness(runtime) });
  });
  process.send?.(LISTENING_MESSAGE);
}

// Listened for from the moment the module loads: a stop order can arrive while the worker is still starting,
// and must not be lost (the primary would wait out the whole grace period, then kill it).
if (cluster.isWorker) {
  process.on('message', (message) => { if (message === STOP_MESSAGE) requestStop('primary'); });
}

/**
 * Runs the primary until every worker has stopped. Workers re-run this program's entry with the same arguments
 * (node:cluster), see `isClusterWorker()` and serve. Resolves with the exit code.
 * `checkConfig` loads the configuration again for a reload (SIGHUP) and returns its worker count; it throws on errors.
 */
export async function runPrimary(count: number, log: Logger, graceMs: number, checkConfig: () => number, metricsListen?: ListenAddress): Promise<number> {
  let stopping = false;
  let crashes = 0;
  // Workers started from source get Gatehouse's V8 flags too. The single executable applies its embedded flags to
  // every process itself and shows them in process.execArgv, which node:cluster would otherwise put on the worker's
  // command line, where the executable hands them to our CLI as arguments.
  cluster.setupPrimary({ execArgv: isSea() ? [] : withV8Flags(process.execArgv) });
  let scheduler: Worker | undefined;
  const fork = (runsScheduler: boolean): Worker => {
    const worker = cluster.fork({ [ACME_SCHEDULER_ENV]: runsScheduler ? '1' : '0' });
    if (runsScheduler) scheduler = worker;
    return worker;
  };
  /** Workers a reload replaced (draining) or started and then gave up on: their exit is expected. */
  const retiring = new Set<Worker>();
  /** Workers a reload started that have not yet said they listen. */
  const starting = new Set<Worker>();
  for (let i = 0; i < count; i++) fork(i === 0);
  const health = metricsListen ? await serveClusterHealth(metricsListen, () => liveWorkers().filter((w) => !retiring.has(w) && !starting.has(w))) : undefined;
  log.info({ workers: count, ...(health ? { metrics: `${metricsListen!.host}:${(health.address() as { port: number }).port}` } : {}) }, 'primary started');

  whenReloadRequested(() => {
    if (stopping || starting.size > 0) { log.warn('reload ignored: a stop or another reload is under way'); return; }
    let next: number;
    try {
      next = checkConfig();
    } catch (error) {
      log.error({ err: { message: (error as Error).message } }, 'reload refused: the configuration has errors; the workers keep the running one');
      return;
    }
    // nginx's way: new workers start with the new configuration beside the old ones (same listeners: node:cluster's
    // shared handle, or SO_REUSEPORT on fixed ports); once all of them listen, the old ones drain and stop.
    const old = liveWorkers().filter((w) => !retiring.has(w));
    const oldScheduler = scheduler;
    log.info({ workers: next, replacing: old.length }, 'reloading: starting workers with the new configuration');
    const fresh = Array.from({ length: next }, (_, i) => fork(i === 0));
    for (const worker of fresh) starting.add(worker);
    void allListening(fresh, RELOAD_START_MS).then((ok) => {
      starting.clear();
      if (stopping) return; // the stop order went to every worker, old and new
      const retire = ok ? old : fresh;
      for (const worker of retire) { retiring.add(worker); if (worker.isConnected()) worker.send(STOP_MESSAGE); }
      if (ok) { log.info({ workers: next }, 'reloaded'); return; }
      scheduler = oldScheduler;
      log.error('reload failed: a new worker did not start (see its log lines); the old workers keep serving');
    });
  });

  const exitCode = await new Promise<number>((resolve) => {
    cluster.on('exit', (worker, code, signal) => {
      const expected = retiring.delete(worker) || starting.has(worker);
      if (stopping) {
        if (liveWorkers().length === 0) resolve(0);
        return;
      }
      if (expected) return;
      // A worker that dies is a bug; keep serving with a replacement, slower and slower if it keeps dying.
      crashes++;
      const delay = Math.min(30_000, 250 * 2 ** Math.min(crashes, 7));
      log.error({ worker_pid: worker.process.pid, code, signal, restart_in_ms: delay }, 'worker exited; starting a new one');
      const wasScheduler = worker === scheduler;
      setTimeout(() => { if (!stopping) fork(wasScheduler); }, delay).unref();
    });
    whenStopRequested((reason) => {
      stopping = true;
      log.info({ reason, grace_ms: graceMs }, 'stopping workers');
      const workers = liveWorkers();
      if (workers.length === 0) resolve(0);
      for (const worker of workers) worker.send(STOP_MESSAGE);
      // A worker stuck past its own grace period is killed, so the primary always ends.
      setTimeout(() => { for (const w of liveWorkers()) w.kill('SIGKILL'); }, graceMs + 5_000).unref();
    }, (signal) => {
      log.warn({ signal }, 'second signal: exiting now');
      for (const w of liveWorkers()) w.kill('SIGKILL');
      resolve(1);
    });
  });
  if (health) { health.closeAllConnections(); await new Promise((resolve) => health.close(resolve)); }
  return exitCode;
}

function liveWorkers(): Worker[] {
  return Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
}

/** True once every worker has reported listening; false as soon as one exits, or when `ms` pass first. */
function allListening(workers: Worker[], ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const waiting = new Set(workers);
    const onExit = () => finish(false);
    const onMessage = (worker: Worker) => (message: unknown) => {
      if (message !== LISTENING_MESSAGE) return;
      waiting.delete(worker);
      if (waiting.size === 0) finish(true);
    };
    const listeners = workers.map((worker) => [worker, onMessage(worker)] as const);
    const timer = setTimeout(() => finish(false), ms);
    function finish(ok: boolean) {
      clearTimeout(timer);
      for (const [worker, listener] of listeners) { worker.off('message', listener); worker.off('exit', onExit); }
      resolve(ok);
    }
    for (const [worker, listener] of listeners) { worker.on('message', listener); worker.once('exit', onExit); }
  });
}

/** The [metrics] listener of a cluster: /ready asks every serving worker, /metrics sums theirs. */
async function serveClusterHealth(address: ListenAddress, serving: () => Worker[]): Promise<http.Server> {
  const metrics = clusterMetrics();
  let queries = 0;
  const server = createHealthServer({
    metrics: async () => ({ text: await metrics.text(), contentType: metrics.contentType }),
    readiness: async () => {
      const workers = serving();
      const id = ++queries;
      const answers = await Promise.all(workers.map((worker) => new Promise<Readiness | undefined>((resolve) => {
        const timer = setTimeout(() => done(undefined), READINESS_WAIT_MS);
        const onMessage = (message: { type?: string; id?: number } & Readiness) => { if (message?.type === READINESS_ANSWER && message.id === id) done(message); };
        function done(answer: Readiness | undefined) { clearTimeout(timer); worker.off('message', onMessage); resolve(answer); }
        worker.on('message', onMessage);
        if (worker.isConnected()) worker.send({ type: READINESS_QUERY, id }); else done(undefined);
      })));
      const sites = new Map<string, boolean>();
      for (const answer of answers) for (const s of answer?.sites ?? []) sites.set(s.site, (sites.get(s.site) ?? true) && s.provider_ready);
      return {
        ready: workers.length > 0 && answers.every((answer) => answer?.ready === true),
        sites: [...sites].map(([site, providerReady]) => ({ site, provider_ready: providerReady })),
      };
    },
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(address.port, address.host, () => resolve()); });
  return server;
}
