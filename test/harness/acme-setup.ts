// Shared by the ACME tests: a config for Gatehouse in front of Pebble, and a TLS client that reports the
// certificate a server presents for a name.
import fs from 'node:fs';
import http from 'node:http';
import type { TestContext } from 'node:test';
import tls from 'node:tls';
import { startGatehouse, writeConfig, type Gatehouse } from './gatehouse-acme.ts';
import { startPebble, type Pebble } from './pebble.ts';

export function acmeMain(pebble: Pebble, extra: Record<string, string> = {}): string {
  const acme = {
    directory: `"${pebble.directoryUrl}"`,
    email: '"ops@app.test"',
    terms_of_service_agreed: 'true',
    storage: '"certs"',
    ca_root: `"${pebble.wfeCaFile}"`,
    http_port: String(pebble.httpPort),
    check_interval: '"1s"',
    retry_min: '"200ms"',
    retry_max: '"2s"',
    ...extra,
  };
  // One serving process each: these tests count processes and orders (workers of one process are covered elsewhere).
  return (
    `workers = 1\n[https]\nlisten = ["127.0.0.1:0"]\n[http]\nlisten = ["127.0.0.1:${pebble.httpPort}"]\n[log]\naccess_log = false\n` +
    `[acme]\n${Object.entries(acme)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n')}\n`
  );
}

export function acmeSite(names: string[], upstream: string): string {
  return `server_names = [${names.map((n) => `"${n}"`).join(', ')}]\n[tls]\nacme = true\n[[routes]]\npath = "/"\nupstream = "${upstream}"\n`;
}

export interface Presented {
  serial: string;
  issuer: string;
  names: string;
  authorized: boolean;
  authorizationError?: string;
}

/** Handshakes with servername and reports the leaf the server presented (authorized = verified against ca). */
export function presented(port: number, servername: string, ca?: string): Promise<Presented> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false }, () => {
      const cert = socket.getPeerCertificate();
      resolve({
        serial: cert.serialNumber.toLowerCase(),
        issuer: String(cert.issuer.CN ?? ''),
        names: cert.subjectaltname ?? '',
        authorized: socket.authorized,
        ...(socket.authorizationError ? { authorizationError: String(socket.authorizationError) } : {}),
      });
      socket.end();
    });
    socket.once('error', reject);
  });
}

/** Plain-HTTP GET with an exact Host header (fetch would not send ours). */
export function plainGet(
  port: number,
  urlPath: string,
  host: string,
): Promise<{ status: number; body: string; location?: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath, headers: { host } }, (res) => {
        let body = '';
        res
          .setEncoding('utf8')
          .on('data', (d: string) => (body += d))
          .on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body,
              ...(res.headers.location ? { location: res.headers.location } : {}),
            }),
          );
      })
      .on('error', reject);
  });
}

/** Pebble + a Gatehouse config with one ACME site + Gatehouse started in-process, all cleaned up after the test. */
export async function acmeScenario(
  t: TestContext,
  opts: {
    pebble?: Parameters<typeof startPebble>[0];
    acme?: Record<string, string>;
    names?: string[];
    upstream?: string;
    before?: (dir: string) => void;
  } = {},
): Promise<{ pebble: Pebble; dir: string; gatehouse: Gatehouse }> {
  const pebble = await startPebble(opts.pebble);
  t.after(() => pebble.stop());
  const dir = writeConfig(acmeMain(pebble, opts.acme), {
    'app.test': acmeSite(opts.names ?? ['app.test'], opts.upstream ?? 'http://127.0.0.1:9'),
  });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  opts.before?.(dir);
  const gatehouse = await startGatehouse(dir);
  t.after(() => gatehouse.stop());
  return { pebble, dir, gatehouse };
}
