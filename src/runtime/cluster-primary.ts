// The primary of `workers = N`: it never serves. It checks the listen addresses, starts the workers
// (runtime/worker-supervision.ts), serves the cluster's [metrics] listener (runtime/cluster-health.ts), tells systemd
// where the service is, passes a reload on to the workers and orders the graceful stop.
import type { Worker } from 'node:cluster';
import type http from 'node:http';
import type { ListenAddress } from '../config/model.ts';
import type { Logger } from '../observability/logger.ts';
import type { ReloadOutcome } from '../observability/metrics.ts';
import { probeListen } from '../http/listen.ts';
import { LISTENING_MESSAGE, RELOAD_DONE, RELOAD_MESSAGE } from './cluster-channel.ts';
import { startClusterHealth, stopClusterHealth, type ClusterMetrics } from './cluster-health.ts';
import { whenReloadRequested, whenStopRequested } from './process-signals.ts';
import { notifySystemd, reloadingMessage } from './systemd-notify.ts';
import { START_ERROR_EXIT, WorkerSupervision } from './worker-supervision.ts';

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
  // One clear line and exit 2 when an address is taken, before any worker starts (each would fail on its own).
  for (const { listener, address } of options.listen) await probeListen(listener, address);
  const primary = new Primary(options, log);
  return primary.run(await startClusterHealth(options.metricsListen, () => primary.workers.serving()));
}

class Primary {
  readonly workers: WorkerSupervision;
  private readonly options: PrimaryOptions;
  private readonly log: Logger;
  private metrics: ClusterMetrics | undefined;
  /** The worker count being served: a reload that changes it replaces the workers, one that keeps it reloads them in place. */
  private workerCount: number;
  /** systemd has been told READY=1 (once every first worker listens). */
  private ready = false;
  /** An in-place reload waits for every worker's answer. */
  private reloading = false;
  private exitCode = 0;
  private finish!: () => void;
  private readonly finished = new Promise<void>((resolve) => {
    this.finish = resolve;
  });

  constructor(options: PrimaryOptions, log: Logger) {
    this.options = options;
    this.log = log;
    this.workerCount = options.workers;
    this.workers = new WorkerSupervision(options.startTimeoutMs, options.metricsListen !== undefined, log, {
      allListening: (count) => this.listening(count),
      cannotStart: () => this.stop('a worker could not start', START_ERROR_EXIT),
      allStopped: () => this.finish(),
    });
  }

  /** Starts the workers, then serves reloads and stop signals until every worker has stopped: the exit code. */
  async run({ metrics, health }: { metrics?: ClusterMetrics; health?: http.Server }): Promise<number> {
    this.metrics = metrics;
    this.workers.start(this.options.workers);
    this.log.info(
      {
        workers: this.options.workers,
        ...(health
          ? { metrics: `${this.options.metricsListen!.host}:${(health.address() as { port: number }).port}` }
          : {}),
      },
      'primary started',
    );
    whenReloadRequested(() => this.reload());
    whenStopRequested(
      (reason) => this.stop(reason, 0),
      (signal) => this.exitNow(signal),
    );
    await this.finished;
    await stopClusterHealth(health);
    return this.exitCode;
  }

  /** Type=notify: ready once every worker's listeners are open. */
  private listening(workers: number): void {
    if (this.ready) return;
    this.ready = true;
    void notifySystemd(this.log, 'READY=1', `STATUS=serving with ${workers} workers`);
  }

  /** SIGHUP: the configuration is checked, then loaded in place by each worker, or by new ones for a new count. */
  private reload(): void {
    if (this.workers.stopping || this.workers.starting.size > 0 || this.reloading) {
      this.log.warn('reload ignored: a stop or another reload is under way');
      return;
    }
    this.reloading = true;
    void notifySystemd(this.log, ...reloadingMessage());
    let next: number;
    try {
      next = this.options.checkConfig();
    } catch (error) {
      this.log.error(
        { err: { message: (error as Error).message } },
        'reload refused: the configuration has errors; the workers keep the running one',
      );
      this.reloaded('invalid_config');
      return;
    }
    const old = this.workers.current();
    if (next === this.workerCount) this.reloadInPlace(old);
    else this.replaceWorkers(old, next);
  }

  /** Each worker reloads in place (runtime/gatehouse.ts): no connection is cut, no process replaced. */
  private reloadInPlace(old: Worker[]): void {
    this.log.info({ workers: old.length }, 'reloading: each worker loads the new configuration in place');
    void Promise.all(old.map((worker) => orderReload(worker, this.options.startTimeoutMs))).then((outcomes) =>
      this.reloaded(
        outcomes.every((o) => o === 'success')
          ? 'success'
          : outcomes.includes('invalid_config')
            ? 'invalid_config'
            : 'failed',
      ),
    );
  }

  /**
   * A new worker count needs new processes. nginx's way: new workers start with the new configuration beside the
   * old ones (same listeners: node:cluster's shared handle, or SO_REUSEPORT on fixed ports); once all of them
   * listen, the old ones drain and stop.
   */
  private replaceWorkers(old: Worker[], next: number): void {
    const { workers } = this;
    const oldScheduler = workers.scheduler;
    this.log.info({ workers: next, replacing: old.length }, 'reloading: starting workers with the new configuration');
    const fresh = Array.from({ length: next }, (_, i) => workers.fork(i === 0));
    for (const worker of fresh) workers.starting.add(worker);
    void allListening(fresh).then((ok) => {
      workers.starting.clear();
      if (workers.stopping) return; // the stop order went to every worker, old and new
      workers.retire(ok ? old : fresh);
      if (ok) {
        this.workerCount = next;
        this.log.info({ workers: next }, 'reloaded');
        this.reloaded('success');
        return;
      }
      workers.scheduler = oldScheduler;
      this.log.error('reload failed: a new worker did not start (see its log lines); the old workers keep serving');
      this.reloaded('failed');
    });
  }

  /** A reload is over: counted by outcome, and systemd is told the service is ready again. */
  private reloaded(outcome: ReloadOutcome): void {
    this.reloading = false;
    this.metrics?.reloaded(outcome);
    void notifySystemd(this.log, 'READY=1', `STATUS=serving; last reload: ${outcome}`);
  }

  private stop(reason: string, code: number): void {
    if (this.workers.stopping) return; // a signal after a failed start: that stop is under way, with its exit code
    this.exitCode = code;
    void notifySystemd(this.log, 'STOPPING=1');
    this.log.info({ reason, grace_ms: this.options.shutdownGraceMs }, 'stopping workers');
    this.workers.stop(this.options.shutdownGraceMs);
  }

  /** A second stop signal: no more waiting for the workers. */
  private exitNow(signal: string): void {
    this.log.warn({ signal }, 'second signal: exiting now');
    this.workers.killAll();
    this.exitCode = 1;
    this.finish();
  }
}

/** Orders one worker to reload in place: its answer, or 'failed' when it exits or does not answer within waitMs. */
function orderReload(worker: Worker, waitMs: number): Promise<ReloadOutcome> {
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
