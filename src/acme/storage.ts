// The certificates ACME obtained, on disk. Each issuance gets its own folder, and one symlink says which is served:
//   <storage>/<domain>/<notBefore>-<serial>/fullchain.pem, privkey.pem (0600)   one folder per certificate
//   <storage>/<domain>/current -> <notBefore>-<serial>                        switched by one rename(2)
//   <storage>/<domain>/fullchain.pem, privkey.pem -> current/…                stable paths for other tools
//   <storage>/<domain>/meta.json                                             issuer, validity, next renewal, last error
// So key and certificate change together or not at all (a crash leaves `current` on the old, complete pair), and a
// `current` that does not load falls back to the previous folder (the one before `current` is kept). The layout before
// (plain fullchain.pem + privkey.pem) is read, and moved into a folder on first read; its half-done writes are
// recovered. A pair that does not parse is reported as corrupt and left in place until a new valid one replaces it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fsyncDir, symlinkAtomic, writeFileAtomic } from '../base/atomic-write.ts';
import type { KeyPair } from '../tls/certificate-store.ts';
import { tryLock } from './lock.ts';

export interface CertInfo {
  names: string[];
  issuer: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/** meta.json: what `gatehouse certs list` shows; written after every order attempt. */
export interface CertMeta {
  domain: string;
  names?: string[];
  issuer?: string;
  serial?: string;
  not_before?: string;
  not_after?: string;
  next_renewal?: string;
  renewal_source?: 'ratio' | 'ari';
  ordered_at?: string;
  order_ms?: number;
  directory?: string;
  last_error?: string;
  last_error_at?: string;
}

export type StoredCert =
  | { state: 'missing' }
  | { state: 'corrupt'; reason: string }
  /** problem: the newest stored pair does not load (why), this is the one before it; recovered: how a pair of the
   *  old layout was found again after an interrupted write. */
  | { state: 'ok'; pair: KeyPair; info: CertInfo; problem?: string; recovered?: string };

const CHAIN = 'fullchain.pem';
const KEY = 'privkey.pem';
const CURRENT = 'current';
/** An issuance folder: notBefore (UTC, to the second) and the serial, so names sort by issuance time. */
const VERSION = /^\d{8}T\d{6}Z-[0-9a-f]{1,64}$/;
/** What writeFileAtomic leaves behind when the process dies before its rename (the old layout's interrupted writes). */
const LEFTOVER = /^\.(fullchain|privkey)\.pem\.[0-9a-f]+\.tmp$/;

export class CertStorage {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  domainDir(domain: string): string {
    return path.join(this.dir, domain);
  }

  /** The stored pair, checked: both files parse, the key belongs to the leaf. Expiry is the caller's business. */
  read(domain: string): StoredCert {
    const dir = this.domainDir(domain);
    const current = readLink(path.join(dir, CURRENT));
    const folders = versions(dir);
    if (current === undefined && folders.length === 0) return this.readOldLayout(domain);
    const newest: StoredCert =
      current === undefined
        ? { state: 'corrupt', reason: `${dir}/${CURRENT} is missing` }
        : VERSION.test(current)
          ? readPair(path.join(dir, current))
          : {
              state: 'corrupt',
              reason: `${dir}/${CURRENT} points to ${JSON.stringify(current)}, not to an issuance folder`,
            };
    if (newest.state === 'ok') return newest;
    const reason = newest.state === 'corrupt' ? newest.reason : `${dir}/${CURRENT} points to ${current}, which is gone`;
    for (const version of folders) {
      if (version === current) continue;
      const older = readPair(path.join(dir, version));
      if (older.state === 'ok') return { ...older, problem: reason };
    }
    return { state: 'corrupt', reason };
  }

  /** Stores a new pair as its own folder, then switches `current` to it; the caller holds the domain's lock. */
  write(domain: string, pair: KeyPair, meta: CertMeta): void {
    const info = describe(pair); // refuse to store anything we could not load again
    const dir = this.domainDir(domain);
    const old = readLink(path.join(dir, CURRENT)) === undefined ? this.oldLayout(domain) : undefined;
    if (old?.stored.state === 'ok') this.switchTo(domain, old.stored.pair, old.stored.info); // kept as the fallback
    this.switchTo(domain, pair, info);
    for (const name of old?.leftovers ?? []) fs.rmSync(path.join(dir, name), { force: true });
    this.writeMeta(meta);
  }

  readMeta(domain: string): CertMeta | undefined {
    try {
      const meta = JSON.parse(fs.readFileSync(path.join(this.domainDir(domain), 'meta.json'), 'utf8')) as CertMeta;
      return typeof meta === 'object' && meta !== null ? meta : undefined;
    } catch {
      return undefined;
    }
  }

  writeMeta(meta: CertMeta): void {
    writeFileAtomic(path.join(this.domainDir(meta.domain), 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`, 0o644);
  }

  /** Issuance folder (files flushed) → `current` → the stable links; then folders older than the previous one go. */
  private switchTo(domain: string, pair: KeyPair, info: CertInfo): void {
    const dir = this.domainDir(domain);
    const version = `${info.notBefore.toISOString().replace(/[-:]|\.\d{3}/g, '')}-${info.serial}`;
    writeFileAtomic(path.join(dir, version, KEY), pair.keyPem, 0o600);
    writeFileAtomic(path.join(dir, version, CHAIN), pair.certPem, 0o644);
    fsyncDir(path.join(dir, version));
    const previous = readLink(path.join(dir, CURRENT));
    symlinkAtomic(version, path.join(dir, CURRENT));
    for (const name of [CHAIN, KEY]) {
      if (readLink(path.join(dir, name)) !== `${CURRENT}/${name}`)
        symlinkAtomic(`${CURRENT}/${name}`, path.join(dir, name));
    }
    for (const old of versions(dir))
      if (old !== version && old !== previous) fs.rmSync(path.join(dir, old), { recursive: true, force: true });
  }

  /** The old layout: fullchain.pem + privkey.pem as plain files. Written key first, so a crash between the two renames
   *  left the new key beside the old certificate, and the new chain complete in its temporary file: try every pair. */
  private readOldLayout(domain: string): StoredCert {
    const { stored, leftovers } = this.oldLayout(domain);
    if (stored.state !== 'ok') return stored;
    // Moved into the new layout under the domain's lock; without it (another process is writing) the next read does it.
    const release = (() => {
      try {
        return tryLock(this.dir, domain);
      } catch {
        return undefined;
      }
    })();
    if (release) {
      try {
        if (readLink(path.join(this.domainDir(domain), CURRENT)) === undefined) {
          this.switchTo(domain, stored.pair, stored.info);
          for (const name of leftovers) fs.rmSync(path.join(this.domainDir(domain), name), { force: true });
        }
      } catch {
        /* a read-only storage folder: keep serving from the old layout */
      } finally {
        release();
      }
    }
    return stored;
  }

  private oldLayout(domain: string): { stored: StoredCert; leftovers: string[] } {
    const dir = this.domainDir(domain);
    const stored = readPair(dir);
    let leftovers: string[] = [];
    try {
      leftovers = fs.readdirSync(dir).filter((name) => LEFTOVER.test(name));
    } catch {
      /* no folder */
    }
    if (stored.state === 'ok' || leftovers.length === 0) return { stored, leftovers };
    const contents = (names: string[]) =>
      names.flatMap((name) => {
        try {
          return [{ name, pem: fs.readFileSync(path.join(dir, name), 'utf8') }];
        } catch {
          return [];
        }
      });
    const chains = contents([CHAIN, ...leftovers.filter((n) => n.startsWith(`.${CHAIN}.`))]);
    const keys = contents([KEY, ...leftovers.filter((n) => n.startsWith(`.${KEY}.`))]);
    let best: { pair: KeyPair; info: CertInfo; from: string } | undefined;
    for (const chain of chains) {
      for (const key of keys) {
        if (chain.name === CHAIN && key.name === KEY) continue;
        const pair = { certPem: chain.pem, keyPem: key.pem };
        let info: CertInfo;
        try {
          info = describe(pair);
        } catch {
          continue;
        }
        if (!best || info.notAfter > best.info.notAfter) best = { pair, info, from: `${chain.name} + ${key.name}` };
      }
    }
    if (!best) return { stored, leftovers };
    const reason = stored.state === 'corrupt' ? stored.reason : 'no fullchain.pem and privkey.pem';
    return {
      stored: {
        state: 'ok',
        pair: best.pair,
        info: best.info,
        recovered: `${reason}; found the pair an interrupted write left in ${dir}: ${best.from}`,
      },
      leftovers,
    };
  }
}

/** Both files of one folder (issuance folder, or the domain folder of the old layout), checked. */
function readPair(dir: string): StoredCert {
  const chainFile = path.join(dir, CHAIN);
  const keyFile = path.join(dir, KEY);
  let certPem: string;
  let keyPem: string;
  try {
    certPem = fs.readFileSync(chainFile, 'utf8');
    keyPem = fs.readFileSync(keyFile, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !fs.existsSync(chainFile) && !fs.existsSync(keyFile)) return { state: 'missing' };
    return { state: 'corrupt', reason: `cannot read ${code === 'ENOENT' ? 'both files' : code} in ${dir}` };
  }
  try {
    const pair = { certPem, keyPem };
    return { state: 'ok', pair, info: describe(pair) };
  } catch (error) {
    return { state: 'corrupt', reason: `${dir}: ${(error as Error).message}` };
  }
}

/** A symlink's target; undefined when there is none (or it is a plain file: the old layout). */
function readLink(file: string): string | undefined {
  try {
    return fs.readlinkSync(file);
  } catch {
    return undefined;
  }
}

/** Issuance folders, newest first: by notBefore, then (two issued within one second) by when they were written. */
function versions(dir: string): string[] {
  let names: string[];
  try {
    names = fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && VERSION.test(e.name))
      .map((e) => e.name);
  } catch {
    return [];
  }
  const written = new Map(
    names.map((name) => [name, fs.statSync(path.join(dir, name), { throwIfNoEntry: false })?.mtimeMs ?? 0]),
  );
  const issued = (name: string) => name.slice(0, name.indexOf('-'));
  return names.sort((a, b) => issued(b).localeCompare(issued(a)) || written.get(b)! - written.get(a)!);
}

/** Parses a chain + key pair; throws with a message an operator understands. */
export function describe(pair: KeyPair): CertInfo {
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pair.certPem)?.[0];
  if (!first) throw new Error('fullchain.pem holds no complete PEM certificate (truncated?)');
  let leaf: crypto.X509Certificate;
  let key: crypto.KeyObject;
  try {
    leaf = new crypto.X509Certificate(first);
  } catch {
    throw new Error('fullchain.pem: the first certificate does not parse');
  }
  try {
    key = crypto.createPrivateKey(pair.keyPem);
  } catch {
    throw new Error('privkey.pem is not a PEM private key (truncated?)');
  }
  if (!leaf.checkPrivateKey(key)) throw new Error('privkey.pem does not belong to the certificate in fullchain.pem');
  return {
    names: (leaf.subjectAltName ?? '')
      .split(', ')
      .filter((n) => n.startsWith('DNS:'))
      .map((n) => n.slice(4).toLowerCase()),
    issuer:
      leaf.issuer
        .split('\n')
        .find((line) => line.startsWith('CN='))
        ?.slice(3) ?? leaf.issuer.replaceAll('\n', ', '),
    serial: leaf.serialNumber.toLowerCase(),
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
  };
}

/** Renew when less than ratio × lifetime remains (Let's Encrypt 90 days, ratio 1/3 → day 60). */
export function renewalTimeByRatio(info: CertInfo, ratio: number): Date {
  const lifetime = info.notAfter.getTime() - info.notBefore.getTime();
  return new Date(info.notAfter.getTime() - ratio * lifetime);
}

/** The stored certificate is fit to serve this site: valid now and covering every name. */
export function fitFor(info: CertInfo, names: readonly string[], now = Date.now()): boolean {
  return (
    info.notBefore.getTime() <= now + 60_000 &&
    info.notAfter.getTime() > now &&
    names.every((n) => info.names.includes(n))
  );
}
