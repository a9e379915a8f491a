// The certificates ACME obtained, on disk: <storage>/<domain>/fullchain.pem, privkey.pem (0600) and meta.json
// (issuer, validity, next renewal, last error). Every file is written through writeFileAtomic; a file that does not
// parse is reported as corrupt and left in place (never deleted) until a new valid certificate replaces it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../runtime/atomic-write.ts';
import type { KeyPair } from '../tls/certificate-store.ts';

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
  | { state: 'ok'; pair: KeyPair; info: CertInfo };

export class CertStorage {
  readonly dir: string;
  constructor(dir: string) { this.dir = dir; }

  domainDir(domain: string): string { return path.join(this.dir, domain); }

  /** The stored pair, checked: both files parse, the key belongs to the leaf. Expiry is the caller's business. */
  read(domain: string): StoredCert {
    const chainFile = path.join(this.domainDir(domain), 'fullchain.pem');
    const keyFile = path.join(this.domainDir(domain), 'privkey.pem');
    let certPem: string;
    let keyPem: string;
    try {
      certPem = fs.readFileSync(chainFile, 'utf8');
      keyPem = fs.readFileSync(keyFile, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && !fs.existsSync(chainFile) && !fs.existsSync(keyFile)) return { state: 'missing' };
      return { state: 'corrupt', reason: `cannot read ${code === 'ENOENT' ? 'both files' : code} in ${this.domainDir(domain)}` };
    }
    try {
      const pair = { certPem, keyPem };
      return { state: 'ok', pair, info: describe(pair) };
    } catch (error) {
      return { state: 'corrupt', reason: `${this.domainDir(domain)}: ${(error as Error).message}` };
    }
  }

  /** Key first, then chain, then meta: each appears whole or not at all. */
  write(domain: string, pair: KeyPair, meta: CertMeta): void {
    describe(pair); // refuse to store anything we could not load again
    writeFileAtomic(path.join(this.domainDir(domain), 'privkey.pem'), pair.keyPem, 0o600);
    writeFileAtomic(path.join(this.domainDir(domain), 'fullchain.pem'), pair.certPem, 0o644);
    this.writeMeta(meta);
  }

  readMeta(domain: string): CertMeta | undefined {
    try {
      const meta = JSON.parse(fs.readFileSync(path.join(this.domainDir(domain), 'meta.json'), 'utf8')) as CertMeta;
      return typeof meta === 'object' && meta !== null ? meta : undefined;
    } catch { return undefined; }
  }

  writeMeta(meta: CertMeta): void {
    writeFileAtomic(path.join(this.domainDir(meta.domain), 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`, 0o644);
  }
}

/** Parses a chain + key pair; throws with a message an operator understands. */
export function describe(pair: KeyPair): CertInfo {
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pair.certPem)?.[0];
  if (!first) throw new Error('fullchain.pem holds no complete PEM certificate (truncated?)');
  let leaf: crypto.X509Certificate;
  let key: crypto.KeyObject;
  try { leaf = new crypto.X509Certificate(first); } catch { throw new Error('fullchain.pem: the first certificate does not parse'); }
  try { key = crypto.createPrivateKey(pair.keyPem); } catch { throw new Error('privkey.pem is not a PEM private key (truncated?)'); }
  if (!leaf.checkPrivateKey(key)) throw new Error('privkey.pem does not belong to the certificate in fullchain.pem');
  return {
    names: (leaf.subjectAltName ?? '').split(', ').filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4).toLowerCase()),
    issuer: leaf.issuer.split('\n').find((line) => line.startsWith('CN='))?.slice(3) ?? leaf.issuer.replaceAll('\n', ', '),
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
  return info.notBefore.getTime() <= now + 60_000 && info.notAfter.getTime() > now && names.every((n) => info.names.includes(n));
}
