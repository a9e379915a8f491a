// `gatehouse serve`: load, build, listen; stop gracefully on SIGTERM / SIGINT.
import { loadConfig } from '../config/load.ts';
import { createLogger, flushLogger } from '../observability/logger.ts';
import { startListeners, type Listening } from '../runtime/listeners.ts';
import { buildRuntime } from '../runtime/runtime.ts';
import { reportConfigError } from './check.ts';

export async function serve(configDir: string): Promise<number> {
  let config;
  try {
    config = loadConfig(configDir);
  } catch (error) {
    return reportConfigError(error);
  }
  const log = createLogger(config.log);
  const listening = await startListeners(buildRuntime(config, log));
  stopOnSignals(listening);
  return new Promise(() => {});
}

/** First signal: graceful stop within the grace period, then exit 0. Second signal: exit at once. */
export function stopOnSignals(listening: Listening, beforeExit: () => Promise<void> = async () => {}): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) { listening.runtime.log.warn({ signal }, 'second signal: exiting now'); process.exit(1); }
    signalled = true;
    listening.runtime.log.info({ signal, grace_ms: listening.runtime.config.lifecycle.shutdown_grace }, 'stopping');
    const log = listening.runtime.log;
    listening.stop().then(beforeExit).then(
      () => flushLogger(log).then(() => process.exit(0)),
      (error: unknown) => { log.error({ err: error }, 'stop failed'); return flushLogger(log).then(() => process.exit(1)); },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
