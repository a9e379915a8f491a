// `gatehouse serve`: load, provision, listen (runtime/gatehouse.ts); stop gracefully on SIGTERM / SIGINT; SIGHUP
// reloads the configuration in place. With workers > 1 this process is the cluster primary and every worker runs this
// same function (runtime/cluster.ts, runtime/cluster-primary.ts); the primary passes a reload on to each worker.
import { loadConfig } from '../config/load.ts';
import { ConfigError, formatProblem } from '../config/problems.ts';
import type { Config, ListenAddress } from '../config/model.ts';
import { flushLogger, openLogger, type Logger } from '../observability/logger.ts';
import {
  isClusterWorker,
  leaveCluster,
  reportListening,
  runsAcmeScheduler,
  whenReloadOrdered,
} from '../runtime/cluster.ts';
import { runPrimary } from '../runtime/cluster-primary.ts';
import type { Gatehouse } from '../runtime/gatehouse.ts';
import { ListenError } from '../http/listen.ts';
import { catchStopSignals, whenReloadRequested, whenStopRequested } from '../runtime/process-signals.ts';
import { notifySystemd, reloadingMessage } from '../runtime/systemd-notify.ts';
import type { ReloadOutcome } from '../observability/metrics.ts';
import { reportConfigError } from './check.ts';

export async function serve(configDir: string): Promise<number> {
  catchStopSignals();
  let config;
  try {
    config = loadConfig(configDir);
  } catch (error) {
    return reportConfigError(error);
  }
  const log = await openLogger(config.log);
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
    const fixed = (listener: 'https' | 'http', addresses: ListenAddress[]) =>
      addresses.map((address) => ({ listener, address }));
    const code = await runPrimary(
      {
        workers: config.workers,
        shutdownGraceMs: config.lifecycle.shutdown_grace,
        startTimeoutMs: config.lifecycle.start_timeout,
        listen: [...fixed('https', config.https.listen), ...fixed('http', config.http.listen)],
        metricsListen: config.metrics.listen,
        checkConfig: () => loadConfig(configDir).workers,
      },
      log,
    );
    await flushLogger(log);
    return code;
  }
  // Imported here, not at the top: a cluster primary never serves, and without the proxy, auth and TLS code it
  // stays small (it forks, restarts, reloads and answers [metrics]).
  const { createGatehouse } = await import('../runtime/gatehouse.ts');
  // Every worker installs the stored certificates, answers the CA's challenges and picks up what is stored later
  // (acme/watch.ts); one of them runs the renewal scheduler. The lock in certs/ still keeps other processes sharing
  // the folder (another serve, `gatehouse certs renew`) from ordering the same certificate at the same time.
  const gatehouse = await createGatehouse(config, { log, acmeScheduler: runsAcmeScheduler() }).start();
  reportListening(gatehouse);
  notifySystemd(log, 'READY=1', 'STATUS=serving');
  // SIGHUP (a single process) or the primary's reload order (a worker): the new configuration is provisioned beside
  // the running one and swapped in; listeners, WebSockets and HTTP/2 sessions stay open.
  const reload = async (): Promise<ReloadOutcome> => {
    let next: Config;
    try {
      next = loadConfig(configDir);
    } catch (error) {
      const problems = error instanceof ConfigError ? error.problems.map(formatProblem) : [(error as Error).message];
      log.error({ problems }, 'reload refused: the configuration has errors; the running one keeps serving');
      return 'invalid_config';
    }
    if (next.workers !== config.workers && !isClusterWorker()) {
      log.error(
        { workers: next.workers, running: config.workers },
        'reload refused: a new `workers` count needs new processes; restart Gatehouse to apply it',
      );
      return 'failed';
    }
    try {
      await gatehouse.reload(next);
      return 'success';
    } catch (error) {
      log.error(
        { err: { message: (error as Error).message } },
        'reload failed; the running configuration keeps serving',
      );
      return 'failed';
    }
  };
  if (isClusterWorker()) whenReloadOrdered(reload);
  else
    whenReloadRequested(() => {
      void notifySystemd(log, ...reloadingMessage());
      void reload().then((outcome) => {
        gatehouse.runtime.metrics?.reloaded(outcome);
        return notifySystemd(log, 'READY=1', `STATUS=serving; last reload: ${outcome}`);
      });
    });
  stopOnSignals(gatehouse);
  return new Promise(() => {});
}

/** First stop request (signal or the primary's order): graceful stop within the grace period, then exit 0. A second signal: exit at once. */
export function stopOnSignals(gatehouse: Gatehouse, beforeExit: () => Promise<void> = async () => {}): void {
  const { log } = gatehouse;
  catchStopSignals();
  whenStopRequested(
    (reason) => {
      log.info({ reason, grace_ms: gatehouse.config.lifecycle.shutdown_grace }, 'stopping');
      void notifySystemd(log, 'STOPPING=1');
      gatehouse
        .stop()
        .then(beforeExit)
        .then(() => leaveCluster())
        .then(
          () => flushLogger(log).then(() => process.exit(0)),
          (error: unknown) => {
            log.error({ err: error }, 'stop failed');
            return flushLogger(log).then(() => process.exit(1));
          },
        );
    },
    (signal) => {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    },
  );
}
