// One order per certificate at a time, across every Gatehouse process sharing the storage folder:
// <storage>/locks/<domain>.lock is created exclusively (O_EXCL) and removed when the order is done.
// A lock left behind by a crashed process is taken over once it is older than staleMs (the holder touches it while it
// works) or its pid is gone (same host).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

/** Returns a release function, or undefined when another process holds a live lock. */
export function tryLock(storageDir: string, domain: string, staleMs = 15 * 60_000): (() => void) | undefined {
  const file = path.join(storageDir, 'locks', `${domain}.lock`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o644);
      const owner: LockOwner = { pid: process.pid, host: os.hostname(), since: new Date().toISOString() };
      try {
        fs.writeFileSync(fd, JSON.stringify(owner));
      } finally {
        fs.closeSync(fd);
      }
      let released = false;
      // Heartbeat: an order that waits long (a CA's Retry-After) keeps its lock fresh, so nobody takes it over.
      const heartbeat = setInterval(
        () => {
          try {
            const now = new Date();
            fs.utimesSync(file, now, now);
          } catch {
            /* gone */
          }
        },
        Math.max(staleMs / 4, 1000),
      ).unref();
      const release = () => {
        if (released) return;
        released = true;
        clearInterval(heartbeat);
        process.off('exit', release);
        fs.rmSync(file, { force: true });
      };
      process.on('exit', release); // a process that exits mid-order leaves no lock behind
      return release;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (!isStale(file, staleMs)) return undefined;
      fs.rmSync(file, { force: true }); // a dead owner's lock: take it over
    }
  }
  return undefined;
}

function isStale(file: string, staleMs: number): boolean {
  let owner: Partial<LockOwner> = {};
  let mtime: number;
  try {
    mtime = fs.statSync(file).mtimeMs;
    owner = JSON.parse(fs.readFileSync(file, 'utf8')) as LockOwner;
  } catch {
    // Vanished meanwhile (free now), or being written this instant (give the writer a moment).
    return !fs.existsSync(file);
  }
  if (Date.now() - mtime > staleMs) return true;
  if (owner.host === os.hostname() && typeof owner.pid === 'number' && owner.pid !== process.pid) {
    try {
      process.kill(owner.pid, 0);
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }
  return false;
}
