// `gatehouse serve`: load, build, listen; stop gracefully on SIGTERM / SIGINT.
import { prepareAcme, startAcme } from '../acme/start.ts';
import { loadConfig } from '../config/load.ts';
import { createLogger } from '../observability/logger.ts';
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
  const runtime = buildRuntime(config, log);
  const acme = await prepareAcme(runtime);
  const listening = await startListeners(runtime);
  if (acme) startAcme(acme, listening);
  // Not awaited: an order in flight is abandoned (its lock file is removed on exit) rather than delaying shutdown.
  stopOnSignals(listening, async () => { void acme?.stop(); });
  return new Promise(() => {});
}

/** First signal: graceful stop within the grace period, then exit 0. Second signal: exit at once. */
export function stopOnSignals(listening: Listening, beforeExit: () => Promise<void> = async () => {}): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) { listening.runtime.log.warn({ signal }, 'second signal: exiting now'); process.exit(1); }
    signalled = true;
    listening.runtime.log.info({ signal, grace_ms: listening.runtime.config.lifecycle.shutdown_grace }, 'stopping');
    listening.stop().then(beforeExit).then(() => process.exit(0), (error: unknown) => {
      listening.runtime.log.error({ err: error }, 'stop failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
