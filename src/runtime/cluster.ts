// `workers = N`: N serving processes share the listeners, like nginx's worker_processes. The primary only forks,
// restarts crashed workers and orders a graceful stop; every worker loads the config and serves on its own.
// TLS session tickets are encrypted with one key shared by all workers, so a session resumes on any of them.
import cluster, { type Worker } from 'node:cluster';
import crypto from 'node:crypto';
import { isSea } from 'node:sea';
import type { Logger } from '../observability/logger.ts';
import { requestStop, whenStopRequested } from './stop-requests.ts';
import { withV8Flags } from './v8-flags.ts';

const TICKET_KEYS_ENV = 'GATEHOUSE_TLS_TICKET_KEYS';
const ACME_SCHEDULER_ENV = 'GATEHOUSE_ACME_SCHEDULER';
const STOP_MESSAGE = 'gatehouse:stop';

/** In a worker: the ticket keys the primary handed down. */
export function sharedTicketKeys(): Buffer | undefined {
  const hex = process.env[TICKET_KEYS_ENV];
  return hex ? Buffer.from(hex, 'hex') : undefined;
}

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

// Listened for from the moment the module loads: a stop order can arrive while the worker is still starting,
// and must not be lost (the primary would wait out the whole grace period, then kill it).
if (cluster.isWorker) {
  process.on('message', (message) => { if (message === STOP_MESSAGE) requestStop('primary'); });
}

/**
 * Runs the primary until every worker has stopped. Workers re-run this program's entry with the same arguments
 * (node:cluster), see `isClusterWorker()` and serve. Resolves with the exit code.
 */
export function runPrimary(count: number, log: Logger, graceMs: number): Promise<number> {
  const env = { [TICKET_KEYS_ENV]: crypto.randomBytes(48).toString('hex') };
  let stopping = false;
  let crashes = 0;
  // Workers started from source get Gatehouse's V8 flags too. The single executable applies its embedded flags to
  // every process itself and shows them in process.execArgv, which node:cluster would otherwise put on the worker's
  // command line, where the executable hands them to our CLI as arguments.
  cluster.setupPrimary({ execArgv: isSea() ? [] : withV8Flags(process.execArgv) });
  let scheduler: Worker | undefined;
  const fork = (runsScheduler: boolean): Worker => {
    const worker = cluster.fork({ ...env, [ACME_SCHEDULER_ENV]: runsScheduler ? '1' : '0' });
    if (runsScheduler) scheduler = worker;
    return worker;
  };
  for (let i = 0; i < count; i++) fork(i === 0);
  log.info({ workers: count }, 'primary started');

  return new Promise((resolve) => {
    cluster.on('exit', (worker, code, signal) => {
      if (stopping) {
        if (Object.keys(cluster.workers ?? {}).length === 0) resolve(0);
        return;
      }
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
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      if (workers.length === 0) resolve(0);
      for (const worker of workers) worker.send(STOP_MESSAGE);
      // A worker stuck past its own grace period is killed, so the primary always ends.
      setTimeout(() => { for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGKILL'); }, graceMs + 5_000).unref();
    }, (signal) => {
      log.warn({ signal }, 'second signal: exiting now');
      for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGKILL');
      resolve(1);
    });
  });
}
