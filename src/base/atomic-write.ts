// Files Gatehouse writes (certificates, keys, generated configs) appear whole or not at all:
// written to a temporary file in the same folder, flushed, then renamed over the target.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temporary = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${crypto.randomBytes(6).toString('hex')}.tmp`,
  );
  try {
    const fd = fs.openSync(temporary, 'wx', mode);
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temporary, file);
  } catch (error) {
    fs.rmSync(temporary, { force: true });
    throw error;
  }
}

/** Points `link` at `target` in one step (a new symlink renamed over the old one, rename(2) is atomic), then
 *  flushes the folder so the switch survives a power cut. */
export function symlinkAtomic(target: string, link: string): void {
  const temporary = path.join(
    path.dirname(link),
    `.${path.basename(link)}.${crypto.randomBytes(6).toString('hex')}.tmp`,
  );
  try {
    fs.symlinkSync(target, temporary);
    fs.renameSync(temporary, link);
  } catch (error) {
    fs.rmSync(temporary, { force: true });
    throw error;
  }
  fsyncDir(path.dirname(link));
}

/** Flushes a folder's entries (new and renamed files) to disk. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
