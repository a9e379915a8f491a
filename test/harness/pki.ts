// A throw-away certificate authority and leaf certificates for tests, made with the openssl CLI.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestCa {
  dir: string;
  caFile: string;
  caPem: string;
  issue(names: string[], label?: string, key?: 'ec' | 'rsa'): LeafFiles;
}
export interface LeafFiles {
  certFile: string;
  keyFile: string;
  certPem: string;
}

function openssl(...args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: 'pipe' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new Error('openssl is missing: run `npm run setup` (apt-get install openssl)');
    throw error;
  }
}

/** A self-signed certificate with a new P-256 key (openssl req -x509), with any extra `openssl req` arguments. */
export function selfSignedP256(
  keyFile: string,
  certFile: string,
  subject: string,
  days: number,
  ...extra: string[]
): void {
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    String(days),
    '-subj',
    subject,
    ...extra,
  );
}

export function createTestCa(
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-pki-')),
  subject = 'Gatehouse Test CA',
): TestCa {
  const caFile = path.join(dir, 'ca.pem');
  const caKey = path.join(dir, 'ca.key');
  selfSignedP256(caKey, caFile, `/CN=${subject}`, 30);
  let serial = 0;
  return {
    dir,
    caFile,
    caPem: fs.readFileSync(caFile, 'utf8'),
    /** A leaf certificate for the names, with a P-256 key (or RSA 2048, for RSA key-exchange cipher suites). */
    issue(names, label = names[0]!.replace(/[^\w.-]/g, '_'), key = 'ec') {
      const base = path.join(dir, `${label}-${++serial}`);
      const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
      const newkey = key === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
      openssl('req', ...newkey, '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${names[0]}`);
      fs.writeFileSync(
        `${base}.ext`,
        `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`,
      );
      openssl(
        'x509',
        '-req',
        '-in',
        `${base}.csr`,
        '-CA',
        caFile,
        '-CAkey',
        caKey,
        '-CAcreateserial',
        '-out',
        `${base}.pem`,
        '-days',
        '30',
        '-extfile',
        `${base}.ext`,
      );
      return { certFile: `${base}.pem`, keyFile: `${base}.key`, certPem: fs.readFileSync(`${base}.pem`, 'utf8') };
    },
  };
}
