// `workers = N`: N serving processes share the listeners, like nginx's worker_processes. The primary only forks,
// restarts crashed workers, orders reloads and graceful stops; every worker loads the config and serves on its own.
import cluster, { type Worker } from 'node:cluster';
import { isSea } from 'node:sea';
import http from 'node:http';
import type { ListenAddress } from '../config/model.ts';
import { createHealthServer, type Readiness } from '../observability/health.ts';
import type { Logger } from '../observability/logger.ts';
import type { clusterMetrics, ReloadOutcome } from '../observability/metrics.ts';
import type { Runtime } from '../http/runtime.ts';
import { listenOn, probeListen } from '../http/listen.ts';
import { requestStop, whenReloadRequested, whenStopRequested } from './process-signals.ts';
import { notifySystemd, reloadingMessage } from './systemd-notify.ts';
import { withV8Flags } from './v8-flags.ts';

const ACME_SCHEDULER_ENV = 'GATEHOUSE_ACME_SCHEDULER';
/** Set for the workers of a primary that serves [metrics]: they load prom-client and answer its collection. */
const METRICS_ENV = 'GATEHOUSE_CLUSTER_METRICS';
const STOP_MESSAGE = 'gatehouse:stop';
/** The primary's order to reload the configuration in place (SIGHUP with an unchanged worker count). */
const RELOAD_MESSAGE = 'gatehouse:reload';
/** A worker's answer to RELOAD_MESSAGE, with how its reload ended. */
const RELOAD_DONE = 'gatehouse:reload-done';
const LISTENING_MESSAGE = 'gatehouse:listening';
const READINESS_QUERY = 'gatehouse:readiness?';
const READINESS_ANSWER = 'gatehouse:readiness';
/** A worker whose listeners are closed asks, and the primary answers: see leaveCluster(). */
const LEAVING_QUERY = 'gatehouse:leaving?';
const LEAVING_ANSWER = 'gatehouse:leaving';
/** A session ended in one worker: the primary passes it on to the others, which close its WebSockets. */
const SESSION_ENDED = 'gatehouse:session-ended';
/** How long /ready waits for each worker's answer; a worker that does not answer in time is not ready. */
const READINESS_WAIT_MS = 2_000;

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

/** What a worker reports from: the configuration it serves now, and the ones a reload replaced that still run. */
export interface ServingWorker {
  readonly runtime: Runtime;
  onRuntime(listener: (runtime: Runtime) => void): void;
  endTunnels(key: string): void;
}

/**
 * In a worker, once it listens: tells the primary (a rolling restart waits for this before it retires old workers),
 * answers the primary's [metrics] listener (readiness over the cluster channel, metrics through prom-client's), and
 * shares the end of a session with the other workers through the primary, so each closes that session's WebSockets.
 * A reload's runtime is shared the same way.
 */
export function reportListening(gatehouse: ServingWorker): void {
  if (!cluster.isWorker) return;
  const share = (runtime: Runtime) => {
    runtime.metrics?.shareWithPrimary();
    for (const site of runtime.siteList)
      site.auth?.sessions.onEnded((key) => process.send?.({ type: SESSION_ENDED, key }));
  };
  share(gatehouse.runtime);
  gatehouse.onRuntime(share);
  process.on('message', (message: { type?: string; id?: number; key?: string }) => {
    // Imported where used, not at the top: the primary never serves and stays without the request path's modules
    // (undici, the proxy, TLS); in a worker it is loaded already.
    if (message?.type === READINESS_QUERY)
      void import('../http/runtime.ts').then(({ runtimeReadiness }) =>
        process.send?.({ type: READINESS_ANSWER, id: message.id, ...runtimeReadiness(gatehouse.runtime) }),
      );
    if (message?.type === SESSION_ENDED && typeof message.key === 'string') gatehouse.endTunnels(message.key);
  });
  process.send?.(LISTENING_MESSAGE);
}

/** In a worker: what the primary's reload order does (the worker reloads its configuration in place and says how it ended). */
export function whenReloadOrdered(reload: () => Promise<ReloadOutcome>): void {
  process.on('message', (message) => {
    if (message === RELOAD_MESSAGE) void reload().then((outcome) => process.send?.({ type: RELOAD_DONE, outcome }));
  });
}

/**
 * In a worker whose listeners are closed, before it exits: one round trip to the primary. The primary of node:cluster
 * accepts connections and hands them to workers over this channel; one it handed over before it learned that this
 * worker's listener closed arrives ahead of the answer, and node:cluster gives it back to be served by another worker.
 * A worker that exited with it in flight would leave that client hanging on a connection nobody serves.
 */
export function leaveCluster(timeoutMs = 5_000): Promise<void> {
  if (!cluster.isWorker || !process.connected) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      process.off('message', onAnswer);
      process.send?.('gatehouse:left', () => resolve());
    };
    const onAnswer = (message: unknown) => {
      if (message === LEAVING_ANSWER) done();
    };
    const timer = setTimeout(done, timeoutMs);
    process.on('message', onAnswer);
    process.send?.(LEAVING_QUERY);
  });
}

// Listened for from the moment the module loads: a stop order can arrive while the worker is still starting,
// and must not be lost (the primary would wait out the whole grace period, then kill it).
if (cluster.isWorker) {
  process.on('message', (message) => {
    if (message === STOP_MESSAGE) requestStop('primary');
  });
  // prom-client answers the primary's collection from the moment it is loaded (observability/metrics.ts): loaded as
  // the worker starts when the primary serves [metrics], and never by the workers of one that does not.
  if (process.env[METRICS_ENV] === '1') void import('../observability/metrics.ts');
}

/** The exit code of a start that no restart can fix: a configuration error, or a listener address that cannot be bound. */
const START_ERROR_EXIT = 2;

/**
 * How long the primary waits before it replaces a worker that died: 0.5 s, doubling with each death up to 30 s, so a
 * worker that fails at once does not spin. A worker that had served for `healthyMs` before it died starts the count
 * over, so one crash after a day of service is not punished for crashes long gone (Kubernetes resets its crash-loop
 * back-off the same way once a container has run for a while).
 */
export class RestartBackoff {
  private deaths = 0;
  private readonly firstMs: number;
  private readonly maxMs: number;
  private readonly healthyMs: number;
  constructor(firstMs = 500, maxMs = 30_000, healthyMs = 60_000) {
    this.firstMs = firstMs;
    this.maxMs = maxMs;
    this.healthyMs = healthyMs;
  }

  /** `servedMs`: how long the dead worker had been listening; undefined when it never listened. */
  next(servedMs: number | undefined): number {
    if (servedMs !== undefined && servedMs >= this.healthyMs) this.deaths = 0;
    this.deaths++;
    return Math.min(this.maxMs, this.firstMs * 2 ** Math.min(this.deaths - 1, 16));
  }
}

/** What the primary knows of one worker. */
interface Supervised {
  /** Set when it reported listening. */
  listeningAt?: number;
  /** Kills it when it has not listened within start_timeout. */
  startTimer: NodeJS.Timeout;
  timedOut: boolean;
}

export interface PrimaryOptions {
  workers: number;
  shutdownGraceMs: number;
  startTimeoutMs: number;
  /** Fixed-port addresses the workers will bind: checked before any worker starts. */
  listen: Array<{ listener: 'https' | 'http'; address: ListenAddress }>;
  metricsListen?: ListenAddress;
  /** Loads the configuration again for a reload (SIGHUP) and returns its worker count; throws on errors. */
  checkConfig: () => number;
}

/**
 * Runs the primary until every worker has stopped. Workers re-run this program's entry with the same arguments
 * (node:cluster), see `isClusterWorker()` and serve. Resolves with the exit code; rejects with a ListenError when an
 * address cannot be bound (before any worker started).
 */
export async function runPrimary(options: PrimaryOptions, log: Logger): Promise<number> {
  const { shutdownGraceMs: graceMs, startTimeoutMs: startMs } = options;
  // The primary's own bookkeeping of live workers, kept from fork to 'exit'. Not cluster.workers: node:cluster removes
  // a worker from it only once both its process has exited and its channel has closed, in either order, so the last
  // worker's 'exit' can still find itself (or another dead worker) listed there.
  const live = new Map<Worker, Supervised>();
  /** Workers a reload replaced (draining) or started and then gave up on: their exit is expected. */
  const retiring = new Set<Worker>();
  /** Workers a reload started that have not yet said they listen. */
  const starting = new Set<Worker>();
  const restarts = new Set<NodeJS.Timeout>();
  const backoff = new RestartBackoff();
  let stopping = false;
  let everListened = false;
  /** The worker count being served: a reload that changes it replaces the workers, one that keeps it reloads them in place. */
  let workers = options.workers;

  // One clear line and exit 2 when an address is taken, before any worker starts (each would fail on its own).
  for (const { listener, address } of options.listen) await probeListen(listener, address);
  /** Workers that listen and are not being replaced: the ones /ready and /metrics ask. */
  const serving = () =>
    [...live]
      .filter(([w, state]) => state.listeningAt !== undefined && !retiring.has(w) && !starting.has(w))
      .map(([w]) => w);
  const metrics = options.metricsListen
    ? (await import('../observability/metrics.ts')).clusterMetrics(serving)
    : undefined;
  const health = options.metricsListen ? await serveClusterHealth(options.metricsListen, metrics!, serving) : undefined;
  /** systemd has been told READY=1 (once every first worker listens). */
  let ready = false;
  /** An in-place reload waits for every worker's answer. */
  let reloading = false;

  // Workers started from source get Gatehouse's V8 flags too. The single executable applies its embedded flags to
  // every process itself and shows them in process.execArgv, which node:cluster would otherwise put on the worker's
  // command line, where the executable hands them to our CLI as arguments. Its workers get execPath as the script
  // argument the executable ignores, and main.ts skips (it is process.argv[1] otherwise: `./gatehouse`, a PATH name).
  cluster.setupPrimary({
    execArgv: isSea() ? [] : withV8Flags(process.execArgv),
    ...(isSea() ? { exec: process.execPath } : {}),
  });
  let scheduler: Worker | undefined;
  const fork = (runsScheduler: boolean): Worker => {
    const worker = cluster.fork({
      [ACME_SCHEDULER_ENV]: runsScheduler ? '1' : '0',
      [METRICS_ENV]: options.metricsListen ? '1' : '0',
    });
    const state: Supervised = {
      timedOut: false,
      startTimer: setTimeout(() => {
        state.timedOut = true;
        log.error(
          { worker_pid: worker.process.pid, start_timeout_ms: startMs },
          'worker did not listen within start_timeout; killing it',
        );
        // Not worker.kill(): node:cluster first asks the worker to disconnect, which a hung worker never answers.
        worker.process.kill('SIGKILL');
      }, startMs),
    };
    live.set(worker, state);
    worker.on('message', (message) => {
      if (message !== LISTENING_MESSAGE) return;
      clearTimeout(state.startTimer);
      state.listeningAt = Date.now();
      everListened = true;
      // Type=notify: ready once every worker's listeners are open.
      if (!ready && [...live.values()].every((s) => s.listeningAt !== undefined)) {
        ready = true;
        void notifySystemd(log, 'READY=1', `STATUS=serving with ${live.size} workers`);
      }
    });
    if (runsScheduler) scheduler = worker;
    return worker;
  };
  const send = (worker: Worker, message: string) => {
    if (worker.isConnected()) worker.send(message);
  };
  for (let i = 0; i < options.workers; i++) fork(i === 0);
  cluster.on('message', (from, message: { type?: string } | string) => {
    if (message === LEAVING_QUERY) {
      send(from, LEAVING_ANSWER);
      return;
    }
    if (typeof message !== 'object' || message?.type !== SESSION_ENDED) return;
    for (const worker of live.keys()) if (worker !== from && worker.isConnected()) worker.send(message);
  });
  log.info(
    {
      workers: options.workers,
      ...(health ? { metrics: `${options.metricsListen!.host}:${(health.address() as { port: number }).port}` } : {}),
    },
    'primary started',
  );

  /** A reload is over: counted by outcome, and systemd is told the service is ready again. */
  const reloaded = (outcome: ReloadOutcome) => {
    reloading = false;
    metrics?.reloaded(outcome);
    void notifySystemd(log, 'READY=1', `STATUS=serving; last reload: ${outcome}`);
  };
  whenReloadRequested(() => {
    if (stopping || starting.size > 0 || reloading) {
      log.warn('reload ignored: a stop or another reload is under way');
      return;
    }
    reloading = true;
    void notifySystemd(log, ...reloadingMessage());
    let next: number;
    try {
      next = options.checkConfig();
    } catch (error) {
      log.error(
        { err: { message: (error as Error).message } },
        'reload refused: the configuration has errors; the workers keep the running one',
      );
      reloaded('invalid_config');
      return;
    }
    const old = [...live.keys()].filter((w) => !retiring.has(w));
    if (next === workers) {
      // Each worker reloads in place (runtime/gatehouse.ts): no connection is cut, no process replaced.
      log.info({ workers: old.length }, 'reloading: each worker loads the new configuration in place');
      void Promise.all(old.map((worker) => reloadInPlace(worker, startMs))).then((outcomes) =>
        reloaded(
          outcomes.every((o) => o === 'success')
            ? 'success'
            : outcomes.includes('invalid_config')
              ? 'invalid_config'
              : 'failed',
        ),
      );
      return;
    }
    // A new worker count needs new processes. nginx's way: new workers start with the new configuration beside the
    // old ones (same listeners: node:cluster's shared handle, or SO_REUSEPORT on fixed ports); once all of them
    // listen, the old ones drain and stop.
    const oldScheduler = scheduler;
    log.info({ workers: next, replacing: old.length }, 'reloading: starting workers with the new configuration');
    const fresh = Array.from({ length: next }, (_, i) => fork(i === 0));
    for (const worker of fresh) starting.add(worker);
    void allListening(fresh).then((ok) => {
      starting.clear();
      if (stopping) return; // the stop order went to every worker, old and new
      const retire = ok ? old : fresh;
      for (const worker of retire) {
        retiring.add(worker);
        send(worker, STOP_MESSAGE);
      }
      if (ok) {
        workers = next;
        log.info({ workers: next }, 'reloaded');
        reloaded('success');
        return;
      }
      scheduler = oldScheduler;
      log.error('reload failed: a new worker did not start (see its log lines); the old workers keep serving');
      reloaded('failed');
    });
  });

  let exitCode = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const stopAll = (reason: string, code: number) => {
    if (stopping) return; // a signal after a failed start: that stop is under way, with its exit code
    stopping = true;
    exitCode = code;
    void notifySystemd(log, 'STOPPING=1');
    for (const timer of restarts) clearTimeout(timer);
    log.info({ reason, grace_ms: graceMs }, 'stopping workers');
    if (live.size === 0) return finish();
    for (const worker of live.keys()) send(worker, STOP_MESSAGE);
    // A worker stuck past its own grace period is killed, so the primary always ends.
    setTimeout(() => {
      for (const worker of live.keys()) worker.process.kill('SIGKILL');
    }, graceMs + 5_000).unref();
  };

  cluster.on('exit', (worker, code, signal) => {
    const state = live.get(worker);
    if (!state) return;
    live.delete(worker);
    // Our end of a dead worker's channel: left open (a process it started may hold the other end), it would keep the
    // primary alive after its last worker.
    if (worker.process.connected) worker.process.disconnect();
    clearTimeout(state.startTimer);
    const expected = retiring.delete(worker) || starting.has(worker);
    if (stopping) {
      if (live.size === 0) finish();
      return;
    }
    if (expected) return;
    const served = state.listeningAt === undefined ? undefined : Date.now() - state.listeningAt;
    const reason = state.timedOut
      ? 'did not listen within start_timeout'
      : `${signal ? `killed by ${signal}` : `exited with code ${code}`}${served === undefined ? ' before it listened' : ''}`;
    if (served === undefined && !everListened && code === START_ERROR_EXIT) {
      // Its configuration or a listener address failed (its own line says which): every restart would fail alike.
      log.error({ worker_pid: worker.process.pid, code, reason }, 'a worker could not start; stopping');
      stopAll('a worker could not start', START_ERROR_EXIT);
      return;
    }
    // A worker that dies is a bug, or a hung start; keep serving with a replacement, slower and slower if it keeps dying.
    const delay = backoff.next(served);
    log.error(
      {
        worker_pid: worker.process.pid,
        code,
        signal,
        reason,
        ...(served === undefined ? {} : { served_ms: served }),
        restart_in_ms: delay,
      },
      'worker exited; starting a new one',
    );
    const wasScheduler = worker === scheduler;
    const timer = setTimeout(() => {
      restarts.delete(timer);
      if (!stopping) fork(wasScheduler);
    }, delay);
    restarts.add(timer);
  });
  whenStopRequested(
    (reason) => stopAll(reason, 0),
    (signal) => {
      log.warn({ signal }, 'second signal: exiting now');
      for (const worker of live.keys()) worker.process.kill('SIGKILL');
      exitCode = 1;
      finish();
    },
  );
  await finished;
  if (health) {
    health.closeAllConnections();
    await new Promise((resolve) => health.close(resolve));
  }
  return exitCode;
}

/** Orders one worker to reload in place: its answer, or 'failed' when it exits or does not answer within waitMs. */
function reloadInPlace(worker: Worker, waitMs: number): Promise<ReloadOutcome> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done('failed'), waitMs);
    const onExit = () => done('failed');
    const onMessage = (message: { type?: string; outcome?: ReloadOutcome }) => {
      if (message?.type === RELOAD_DONE && message.outcome) done(message.outcome);
    };
    function done(outcome: ReloadOutcome) {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', onExit);
      resolve(outcome);
    }
    worker.on('message', onMessage);
    worker.once('exit', onExit);
    if (worker.isConnected()) worker.send(RELOAD_MESSAGE);
    else done('failed');
  });
}

/** True once every worker has reported listening; false as soon as one exits (the primary kills one that is late). */
function allListening(workers: Worker[]): Promise<boolean> {
  return new Promise((resolve) => {
    const waiting = new Set(workers);
    const onExit = () => finish(false);
    const onMessage = (worker: Worker) => (message: unknown) => {
      if (message !== LISTENING_MESSAGE) return;
      waiting.delete(worker);
      if (waiting.size === 0) finish(true);
    };
    const listeners = workers.map((worker) => [worker, onMessage(worker)] as const);
    function finish(ok: boolean) {
      for (const [worker, listener] of listeners) {
        worker.off('message', listener);
        worker.off('exit', onExit);
      }
      resolve(ok);
    }
    for (const [worker, listener] of listeners) {
      worker.on('message', listener);
      worker.once('exit', onExit);
    }
  });
}

/** The [metrics] listener of a cluster: /ready asks every serving worker, /metrics sums theirs. */
async function serveClusterHealth(
  address: ListenAddress,
  metrics: ReturnType<typeof clusterMetrics>,
  serving: () => Worker[],
): Promise<http.Server> {
  let queries = 0;
  const server = createHealthServer({
    metrics: async () => ({ text: await metrics.text(), contentType: metrics.contentType }),
    readiness: async () => {
      const workers = serving();
      const id = ++queries;
      const answers = await Promise.all(
        workers.map(
          (worker) =>
            new Promise<Readiness | undefined>((resolve) => {
              const timer = setTimeout(() => done(undefined), READINESS_WAIT_MS);
              const onMessage = (message: { type?: string; id?: number } & Readiness) => {
                if (message?.type === READINESS_ANSWER && message.id === id) done(message);
              };
              function done(answer: Readiness | undefined) {
                clearTimeout(timer);
                worker.off('message', onMessage);
                resolve(answer);
              }
              worker.on('message', onMessage);
              if (worker.isConnected()) worker.send({ type: READINESS_QUERY, id });
              else done(undefined);
            }),
        ),
      );
      const sites = new Map<string, boolean>();
      for (const answer of answers)
        for (const s of answer?.sites ?? []) sites.set(s.site, (sites.get(s.site) ?? true) && s.provider_ready);
      // Every worker has its own connections to the store: the worst one is reported.
      const stores = answers.flatMap((answer) => (answer?.store ? [answer.store] : []));
      const store = stores.find((s) => s.state === 'degraded') ?? stores[0];
      const acmeStores = answers.flatMap((answer) => (answer?.acme_storage ? [answer.acme_storage] : []));
      const acmeStorage = acmeStores.find((s) => s.state === 'degraded') ?? acmeStores[0];
      return {
        ready: workers.length > 0 && answers.every((answer) => answer?.ready === true),
        sites: [...sites].map(([site, providerReady]) => ({ site, provider_ready: providerReady })),
        ...(store ? { store } : {}),
        ...(acmeStorage ? { acme_storage: acmeStorage } : {}),
      };
    },
  });
  await listenOn(server, 'metrics', address);
  return server;
}
