// Real Pebble (Debian package `pebble`, Let's Encrypt's test CA) on free loopback ports, with its own WFE certificate
// and a DNS responder that maps test names to 127.0.0.1 (switchable, to make a domain "not point at us").
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { freePort, startDns } from './net.ts';
import { selfSignedP256 } from './pki.ts';
import { WAIT_MS } from './wait.ts';

export interface Pebble {
  directoryUrl: string;
  /** Port Pebble's validator connects to for HTTP-01: put Gatehouse's [http] listener there. */
  httpPort: number;
  wfeCaFile: string;
  /** Where names resolve; set to e.g. '127.0.0.2' to make validation fail. */
  answer: { ip: string };
  /** Certificates issued so far (counted from Pebble's log). */
  issued(): number;
  log(): string;
  rootPem(): Promise<string>;
  /** Stops the CA process only (its ports fall silent: "the CA is down"); stop() still cleans up. */
  halt(): Promise<void>;
  /** A new Pebble process on the same ports: it has forgotten every account, order and authorization (new roots too). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export function requirePebble(): void {
  if (spawnSync('pebble', ['-version']).error)
    throw new Error('pebble (Debian package) is not installed: run: npm run setup');
}

export async function startPebble(
  opts: { validitySeconds?: number; env?: Record<string, string> } = {},
): Promise<Pebble> {
  requirePebble();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pebble-'));
  const f = (name: string) => path.join(dir, name);
  const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  selfSignedP256(f('ca.key'), f('ca.pem'), '/CN=pebble-wfe-test-ca', 2);
  ossl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    f('wfe.key'),
    '-out',
    f('wfe.csr'),
    '-subj',
    '/CN=localhost',
  );
  fs.writeFileSync(
    f('ext.cnf'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n',
  );
  ossl(
    'x509',
    '-req',
    '-in',
    f('wfe.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('wfe.pem'),
    '-days',
    '2',
    '-extfile',
    f('ext.cnf'),
  );

  const [acmePort, mgmtPort, dnsPort, tlsPort, httpPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const answer = { ip: '127.0.0.1' };
  const dns = await startDns(dnsPort, () => answer.ip);
  fs.writeFileSync(
    f('pebble.json'),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: f('wfe.pem'),
        privateKey: f('wfe.key'),
        httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(opts.validitySeconds ? { certificateValidityPeriod: opts.validitySeconds } : {}),
      },
    }),
  );
  let child: ChildProcess;
  let log = '';
  const launch = () => {
    child = spawn('pebble', ['-config', f('pebble.json'), '-dnsserver', `127.0.0.1:${dnsPort}`], {
      // No random validation sleep, no random badNonce, no authorization reuse: every order validates every name.
      env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const from = log.length;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pebble not ready in ${WAIT_MS / 1000} s:\n${log}`)), WAIT_MS);
      const onData = (data: Buffer) => {
        log += data;
        if (log.slice(from).includes('ACME directory available')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`pebble exited ${code}:\n${log}`));
      });
    });
  };
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await gone;
  };
  await launch();
  return {
    directoryUrl: `https://127.0.0.1:${acmePort}/dir`,
    httpPort,
    wfeCaFile: f('ca.pem'),
    answer,
    issued: () => log.match(/Issued certificate serial/g)?.length ?? 0,
    log: () => log,
    rootPem: () =>
      new Promise((resolve, reject) => {
        https
          .get(`https://127.0.0.1:${mgmtPort}/roots/0`, { ca: fs.readFileSync(f('ca.pem')) }, (res) => {
            let body = '';
            res
              .setEncoding('utf8')
              .on('data', (d: string) => (body += d))
              .on('end', () => resolve(body));
          })
          .on('error', reject);
      }),
    halt: kill,
    restart: async () => {
      await kill();
      await launch();
    },
    stop: async () => {
      dns.close();
      await kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
