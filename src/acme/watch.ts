// Notices new files in a domain's storage folder (another process or `gatehouse certs renew` stored a certificate),
// so the scheduler need not wait for its next check. Bursts of events (key, chain, meta) are folded into one call.
import fs from 'node:fs';

export function watchFolder(dir: string, onChange: () => void, settleMs = 200): () => void {
  fs.mkdirSync(dir, { recursive: true });
  let timer: NodeJS.Timeout | undefined;
  const watcher = fs.watch(dir, () => {
    clearTimeout(timer);
    timer = setTimeout(onChange, settleMs).unref();
  });
  watcher.on('error', () => watcher.close());
  watcher.unref();
  return () => {
    clearTimeout(timer);
    watcher.close();
  };
}
