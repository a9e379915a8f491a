// One place where a request to stop arrives: SIGTERM, SIGINT, or (in a cluster worker) the primary's stop order;
// and where SIGHUP (reload) arrives.
// Signals are caught from the first moment a serving command runs, not once it is ready: until a process installs a
// handler the kernel's default action ends it at once, so a SIGTERM sent right after "listening" or "primary started"
// was logged (a service manager or a test does exactly that) killed it without a graceful stop and without exit code 0.
// A request that arrives before the command has said how to stop is kept and carried out as soon as it does.
// https://nodejs.org/api/process.html#signal-events

type OnStop = (reason: string) => void;

let requested: string | undefined;
let onStop: OnStop | undefined;
let onRepeat: ((signal: NodeJS.Signals) => void) | undefined;
let signals = 0;
let catching = false;
let onReload: (() => void) | undefined;

/** Installs the SIGTERM / SIGINT / SIGHUP handlers. Idempotent. */
export function catchStopSignals(): void {
  if (catching) return;
  catching = true;
  const receive = (signal: NodeJS.Signals) => {
    if (++signals === 1) requestStop(signal);
    else if (onRepeat) onRepeat(signal);
    else process.exit(1);
  };
  process.on('SIGTERM', receive);
  process.on('SIGINT', receive);
  // SIGHUP's default action ends the process too: an early or unsupported reload is ignored, never fatal.
  process.on('SIGHUP', () => onReload?.());
}

/** What SIGHUP does in this process (a reload in place; the cluster primary passes it on to the workers). */
export function whenReloadRequested(reload: () => void): void {
  onReload = reload;
}

/** A stop asked for by other means than a signal (the cluster primary's order to a worker). */
export function requestStop(reason: string): void {
  if (requested !== undefined) return;
  requested = reason;
  onStop?.(reason);
}

/**
 * How this process stops: `stop` runs once, on the first request (at once if one already came); `repeat` runs on
 * every further signal (an operator pressing Ctrl-C twice means "now").
 */
export function whenStopRequested(stop: OnStop, repeat: (signal: NodeJS.Signals) => void): void {
  onStop = stop;
  onRepeat = repeat;
  if (requested !== undefined) stop(requested);
}
