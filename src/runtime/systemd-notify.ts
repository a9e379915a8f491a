// Tells systemd (Type=notify) where the service is: READY=1 once every listener is open, RELOADING=1 … READY=1
// around a SIGHUP reload, STOPPING=1 when a stop begins. Only when systemd asked for it (NOTIFY_SOCKET is set),
// and only from the process systemd started (a single process, or a cluster's primary), never from a worker.
// Node cannot send on an AF_UNIX datagram socket, so the message goes through `systemd-notify`, which waits until
// systemd has processed it (sd_notify_barrier): the unit needs NotifyAccess=all, as the message comes from a child.
// https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
import { execFile } from 'node:child_process';
import cluster from 'node:cluster';
import type { Logger } from '../observability/logger.ts';

let queue: Promise<void> = Promise.resolve();

/** Sends `assignments` (e.g. "READY=1") in order after the ones before; resolves once sent (or failed: logged). */
export function notifySystemd(log: Logger, ...assignments: string[]): Promise<void> {
  if (!process.env.NOTIFY_SOCKET || cluster.isWorker) return Promise.resolve();
  queue = queue.then(
    () =>
      new Promise<void>((resolve) => {
        execFile('systemd-notify', assignments, { timeout: 10_000 }, (error, _stdout, stderr) => {
          if (error)
            log.warn(
              { err: { message: error.message }, stderr: stderr.trim(), notify: assignments.join(' ') },
              'could not notify systemd',
            );
          resolve();
        });
      }),
  );
  return queue;
}

/** RELOADING=1 with the time the reload began: systemd 253+ (Type=notify-reload) wants MONOTONIC_USEC with it. */
export function reloadingMessage(): string[] {
  // process.hrtime reads CLOCK_MONOTONIC (libuv uv_hrtime), the clock systemd compares with.
  return ['RELOADING=1', `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`];
}
