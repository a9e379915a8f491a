// The cluster primary's workers: forks them, kills one that does not listen within start_timeout, tells why one
// exited, and replaces one that died, slower and slower if it keeps dying. Reloads and the stop order (runtime/
// cluster-primary.ts) ask it for the workers they act on.
import cluster, { type Worker } from 'node:cluster';
import { isSea } from 'node:sea';
import type { Logger } from '../observability/logger.ts';
import {
  ACME_SCHEDULER_ENV,
  LEAVING_ANSWER,
  LEAVING_QUERY,
  LISTENING_MESSAGE,
  METRICS_ENV,
  SESSION_ENDED,
  STOP_MESSAGE,
} from './cluster-channel.ts';
import { withV8Flags } from './v8-flags.ts';

/** The exit code of a start that no restart can fix: a configuration error, or a listener address that cannot be bound. */
export const START_ERROR_EXIT = 2;

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

/** What the supervision tells the primary. */
export interface SupervisionEvents {
  /** Every live worker listens (called each time a worker's listening completes the set). */
  allListening(workers: number): void;
  /** A first worker failed with START_ERROR_EXIT: every restart would fail alike. */
  cannotStart(): void;
  /** The last worker exited after the stop began (or there was none to stop). */
  allStopped(): void;
}

export class WorkerSupervision {
  // The primary's own bookkeeping of live workers, kept from fork to 'exit'. Not cluster.workers: node:cluster removes
  // a worker from it only once both its process has exited and its channel has closed, in either order, so the last
  // worker's 'exit' can still find itself (or another dead worker) listed there.
  private readonly live = new Map<Worker, Supervised>();
  /** Workers a reload replaced (draining) or started and then gave up on: their exit is expected. */
  readonly retiring = new Set<Worker>();
  /** Workers a reload started that have not yet said they listen. */
  readonly starting = new Set<Worker>();
  private readonly restarts = new Set<NodeJS.Timeout>();
  private readonly backoff = new RestartBackoff();
  private everListened = false;
  private stopOrdered = false;
  /** The worker that runs the ACME renewal scheduler; a reload that gives up on its new workers puts it back. */
  scheduler: Worker | undefined;
  private readonly startTimeoutMs: number;
  private readonly metrics: boolean;
  private readonly log: Logger;
  private readonly events: SupervisionEvents;

  constructor(startTimeoutMs: number, metrics: boolean, log: Logger, events: SupervisionEvents) {
    this.startTimeoutMs = startTimeoutMs;
    this.metrics = metrics;
    this.log = log;
    this.events = events;
  }

  get stopping(): boolean {
    return this.stopOrdered;
  }

  /** Forks the first `count` workers (the first runs the ACME scheduler) and starts watching them. */
  start(count: number): void {
    // Workers started from source get Gatehouse's V8 flags too. The single executable applies its embedded flags to
    // every process itself and shows them in process.execArgv, which node:cluster would otherwise put on the worker's
    // command line, where the executable hands them to our CLI as arguments. Its workers get execPath as the script
    // argument the executable ignores, and main.ts skips (it is process.argv[1] otherwise: `./gatehouse`, a PATH name).
    cluster.setupPrimary({
      execArgv: isSea() ? [] : withV8Flags(process.execArgv),
      ...(isSea() ? { exec: process.execPath } : {}),
    });
    for (let i = 0; i < count; i++) this.fork(i === 0);
    cluster.on('message', (from, message: { type?: string } | string) => this.relay(from, message));
    cluster.on('exit', (worker, code, signal) => this.exited(worker, code, signal));
  }

  /** Workers that listen and are not being replaced: the ones /ready and /metrics ask. */
  serving(): Worker[] {
    return [...this.live]
      .filter(([w, state]) => state.listeningAt !== undefined && !this.retiring.has(w) && !this.starting.has(w))
      .map(([w]) => w);
  }

  /** The live workers a reload would replace (not those already draining). */
  current(): Worker[] {
    return [...this.live.keys()].filter((w) => !this.retiring.has(w));
  }

  fork(runsScheduler: boolean): Worker {
    const worker = cluster.fork({
      [ACME_SCHEDULER_ENV]: runsScheduler ? '1' : '0',
      [METRICS_ENV]: this.metrics ? '1' : '0',
    });
    const state = { timedOut: false } as Supervised;
    state.startTimer = this.killIfNotListening(worker, state);
    this.live.set(worker, state);
    worker.on('message', (message) => {
      if (message === LISTENING_MESSAGE) this.listened(state);
    });
    if (runsScheduler) this.scheduler = worker;
    return worker;
  }

  /** Retires `workers`: each is told to stop, and its exit is expected. */
  retire(workers: Worker[]): void {
    for (const worker of workers) {
      this.retiring.add(worker);
      send(worker, STOP_MESSAGE);
    }
  }

  /** Orders every worker to stop; one stuck past its own grace period is killed, so the primary always ends. */
  stop(graceMs: number): void {
    this.stopOrdered = true;
    for (const timer of this.restarts) clearTimeout(timer);
    if (this.live.size === 0) return this.events.allStopped();
    for (const worker of this.live.keys()) send(worker, STOP_MESSAGE);
    setTimeout(() => this.killAll(), graceMs + 5_000).unref();
  }

  killAll(): void {
    for (const worker of this.live.keys()) worker.process.kill('SIGKILL');
  }

  private killIfNotListening(worker: Worker, state: Supervised): NodeJS.Timeout {
    return setTimeout(() => {
      state.timedOut = true;
      this.log.error(
        { worker_pid: worker.process.pid, start_timeout_ms: this.startTimeoutMs },
        'worker did not listen within start_timeout; killing it',
      );
      // Not worker.kill(): node:cluster first asks the worker to disconnect, which a hung worker never answers.
      worker.process.kill('SIGKILL');
    }, this.startTimeoutMs);
  }

  private listened(state: Supervised): void {
    clearTimeout(state.startTimer);
    state.listeningAt = Date.now();
    this.everListened = true;
    if ([...this.live.values()].every((s) => s.listeningAt !== undefined)) this.events.allListening(this.live.size);
  }

  /** Answers a leaving worker (see leaveCluster()); passes the end of a session on to the other workers. */
  private relay(from: Worker, message: { type?: string } | string): void {
    if (message === LEAVING_QUERY) {
      send(from, LEAVING_ANSWER);
      return;
    }
    if (typeof message !== 'object' || message?.type !== SESSION_ENDED) return;
    for (const worker of this.live.keys()) if (worker !== from && worker.isConnected()) worker.send(message);
  }

  private exited(worker: Worker, code: number, signal: string): void {
    const state = this.live.get(worker);
    if (!state) return;
    this.live.delete(worker);
    // Our end of a dead worker's channel: left open (a process it started may hold the other end), it would keep the
    // primary alive after its last worker.
    if (worker.process.connected) worker.process.disconnect();
    clearTimeout(state.startTimer);
    const expected = this.retiring.delete(worker) || this.starting.has(worker);
    if (this.stopOrdered) {
      if (this.live.size === 0) this.events.allStopped();
      return;
    }
    if (expected) return;
    const served = state.listeningAt === undefined ? undefined : Date.now() - state.listeningAt;
    const reason = exitReason(state, code, signal, served);
    if (served === undefined && !this.everListened && code === START_ERROR_EXIT) {
      // Its configuration or a listener address failed (its own line says which): every restart would fail alike.
      this.log.error({ worker_pid: worker.process.pid, code, reason }, 'a worker could not start; stopping');
      this.events.cannotStart();
      return;
    }
    this.restartLater(worker, code, signal, reason, served);
  }

  /** A worker that dies is a bug, or a hung start; keep serving with a replacement, slower and slower if it keeps dying. */
  private restartLater(worker: Worker, code: number, signal: string, reason: string, served: number | undefined) {
    const delay = this.backoff.next(served);
    this.log.error(
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
    const wasScheduler = worker === this.scheduler;
    const timer = setTimeout(() => {
      this.restarts.delete(timer);
      if (!this.stopOrdered) this.fork(wasScheduler);
    }, delay);
    this.restarts.add(timer);
  }
}

function exitReason(state: Supervised, code: number, signal: string, served: number | undefined): string {
  if (state.timedOut) return 'did not listen within start_timeout';
  return `${signal ? `killed by ${signal}` : `exited with code ${code}`}${served === undefined ? ' before it listened' : ''}`;
}

function send(worker: Worker, message: string): void {
  if (worker.isConnected()) worker.send(message);
}
