// `workers = N`: N serving processes share the listeners, like nginx's worker_processes. The primary only forks,
// restarts crashed workers, orders reloads and graceful stops (runtime/cluster-primary.ts); every worker loads the
// config and serves on its own. This file is the worker's side of the cluster channel.
import cluster from 'node:cluster';
import type { ReloadOutcome } from '../observability/metrics.ts';
import type { Runtime } from '../http/runtime.ts';
import {
  ACME_SCHEDULER_ENV,
  LEAVING_ANSWER,
  LEAVING_QUERY,
  LISTENING_MESSAGE,
  METRICS_ENV,
  READINESS_ANSWER,
  READINESS_QUERY,
  RELOAD_DONE,
  RELOAD_MESSAGE,
  SESSION_ENDED,
  STOP_MESSAGE,
} from './cluster-channel.ts';
import { requestStop } from './process-signals.ts';

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
