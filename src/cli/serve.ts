// `gatehouse serve`: load, build, listen; stop gracefully on SIGTERM / SIGINT; SIGHUP reloads the configuration when
// workers > 1. Then this process is the cluster primary and every worker runs this same function (runtime/cluster.ts).
import { prepareAcme, startAcme } from '../acme/start.ts';
import { loadConfig } from '../config/load.ts';
import type { Config, ListenAddress } from '../config/model.ts';
import { createLogger, flushLogger, type Logger } from '../observability/logger.ts';
import { isClusterWorker, leaveCluster, reportListening, runPrimary, runsAcmeScheduler } from '../runtime/cluster.ts';
import type { Listening } from '../runtime/listeners.ts';
import { ListenError } from '../runtime/listen.ts';
import { catchStopSignals, whenReloadRequested, whenStopRequested } from '../runtime/process-signals.ts';
import { reportConfigError } from './check.ts';

export async function serve(configDir: string): Promise<number> {
  catchStopSignals();
  let config;
  try {
    config = loadConfig(configDir);
  } catch (error) {
    return reportConfigError(error);
  }
  const log = createLogger(config.log);
  try {
    return await serveConfig(config, configDir, log);
  } catch (error) {
    // An address that cannot be bound: one line naming the listener and the address, exit 2 like a config error.
    if (!(error instanceof ListenError)) throw error;
    process.stderr.write(`${error.message}\n`);
    await flushLogger(log);
    return 2;
  }
}

async function serveConfig(config: Config, configDir: string, log: Logger): Promise<number> {
  if (!isClusterWorker() && config.workers > 1) {
    const fixed = (listener: 'https' | 'http', addresses: ListenAddress[]) => addresses.map((address) => ({ listener, address }));
    const code = await runPrimary({
      workers: config.workers,
      shutdownGraceMs: config.lifecycle.shutdown_grace,
      startTimeoutMs: config.lifecycle.start_timeout,
      listen: [...fixed('https', config.https.listen), ...fixed('http', config.http.listen)],
      metricsListen: config.metrics.listen,
      checkConfig: () => loadConfig(configDir).workers,
    }, log);
    await flushLogger(log);
    return code;
  }
  // Imported here, not at the top: a cluster primary never serves, and without the proxy, auth and TLS code it
  // stays small (it forks, restarts, reloads and answers [metrics]).
  const { buildRuntime } = await import('../runtime/runtime.ts');
  const { startListeners } = await import('../runtime/listeners.ts');
  const runtime = buildRuntime(config, log);
  // Every worker installs the stored certificates, answers the CA's challenges and picks up what is stored later
  // (acme/watch.ts); one of them runs the renewal scheduler. The lock in certs/ still keeps other processes sharing
  // the folder (another serve, `gatehouse certs renew`) from ordering the same certificate at the same time.
  const acme = await prepareAcme(runtime);
  const listening = await startListeners(runtime);
  if (acme) startAcme(acme, listening, runsAcmeScheduler());
  reportListening(runtime);
  whenReloadRequested(() => {
    if (isClusterWorker()) log.info('SIGHUP reached a worker: the primary reloads (signal it, not the workers)');
    else log.warn('reload needs workers > 1 (a rolling restart of the workers); with one process, restart it to apply a new configuration');
  });
  // Not awaited: an order in flight is abandoned (its lock file is removed on exit) rather than delaying shutdown.
  stopOnSignals(listening, async () => { void acme?.stop(); });
  return new Promise(() => {});
}

/** First stop request (signal or the primary's order): graceful stop within the grace period, then exit 0. A second signal: exit at once. */
export function stopOnSignals(listening: Listening, beforeExit: () => Promise<void> = async () => {}): void {
  const log = listening.runtime.log;
  catchStopSignals();
  whenStopRequested((reason) => {
    log.info({ reason, grace_ms: listening.runtime.config.lifecycle.shutdown_grace }, 'stopping');
    listening.stop().then(beforeExit).then(() => leaveCluster()).then(
      () => flushLogger(log).then(() => process.exit(0)),
      (error: unknown) => { log.error({ err: error }, 'stop failed'); return flushLogger(log).then(() => process.exit(1)); },
    );
  }, (signal) => { log.warn({ signal }, 'second signal: exiting now'); process.exit(1); });
}
