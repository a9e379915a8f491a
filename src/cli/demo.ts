// `gatehouse demo` (what `npm start` runs): https://localhost:8443 in front of a built-in echo backend, protected by
// an embedded identity provider (two users: alice, bob; any password), with nothing to configure. It writes a real
// configuration into ./certs/demo/ and serves it through the normal path, so the demo exercises exactly what
// `serve` does. The self-signed certificate is made once and reused.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { loadConfig } from '../config/load.ts';
import { startEchoBackend } from '../demo/echo-backend.ts';
import { startDemoIdentityProvider } from '../demo/identity-provider.ts';
import { openLogger } from '../observability/logger.ts';
import { writeFileAtomic } from '../base/atomic-write.ts';
import { createGatehouse, type Gatehouse } from '../runtime/gatehouse.ts';
import { catchStopSignals } from '../runtime/process-signals.ts';
import { createSelfSigned } from '../tls/self-signed.ts';
import { reportConfigError } from './check.ts';
import { stopOnSignals } from './serve.ts';

export const DEMO_PORT = 8443;

export interface RunningDemo {
  gatehouse: Gatehouse;
  url: string;
  issuer: string;
  stop(): Promise<void>;
}

export async function demo(stateDir = path.resolve('certs', 'demo'), port = DEMO_PORT): Promise<number> {
  catchStopSignals();
  let running: RunningDemo;
  try {
    running = await startDemo(stateDir, port);
  } catch (error) {
    return reportConfigError(error);
  }
  const { log } = running.gatehouse;
  log.info(
    `demo ready: open ${running.url}/ (self-signed certificate: accept it, or curl -k) and sign in as alice or bob, any password`,
  );
  stopOnSignals(running.gatehouse, () => running.stop());
  return new Promise(() => {});
}

/** Starts the echo backend, the identity provider and Gatehouse; stop() ends the two helpers (Gatehouse is stopped by the caller). */
export async function startDemo(stateDir: string, requestedPort: number, quiet = false): Promise<RunningDemo> {
  // The provider must know the redirect URI (with its port) before it starts, so port 0 is resolved here first.
  const port = requestedPort === 0 ? await freePort() : requestedPort;
  const backend = await startEchoBackend();
  const origin = `https://localhost:${port}`;
  const idp = await startDemoIdentityProvider({
    redirectUris: [`${origin}/oauth2/callback`],
    postLogoutRedirectUris: [`${origin}/`],
  });
  const helpers = async () => {
    await idp.close();
    await backend.close();
  };
  await ensureCertificate(stateDir);
  writeFileAtomic(
    path.join(stateDir, 'gatehouse.toml'),
    `# Written by \`gatehouse demo\` on every start; edit config/ for a real setup.
[https]
listen = ["127.0.0.1:${port}"]
default_site = "localhost"

[log]
format = "pretty"
level = "${quiet ? 'warn' : 'info'}"

[session]
path = "state/sessions.sqlite"
`,
  );
  writeFileAtomic(
    path.join(stateDir, 'sites', 'localhost.toml'),
    `server_names = ["localhost"]
deny_paths = ['/\\.ht']

[tls]
cert = "localhost.crt"
key = "localhost.key"

[[routes]]
path = "/"
upstream = "${backend.url}"

# The embedded demo identity provider (oidc-provider on loopback; http:// is accepted for loopback issuers only).
[auth]
provider = "oidc"
oidc_issuer_url = "${idp.issuer}"
client_id = "${idp.clientId}"
client_secret = "${idp.clientSecret}"
cookie_secret = "${crypto.randomBytes(32).toString('base64')}"
email_domains = ["*"]
pass_access_token = false
# /public/ is open to anyone (curl -k https://localhost:${port}/public/ shows what the backend receives);
# everything else asks for a login.
skip_auth_routes = ["^/public/"]
`,
    0o600,
  );
  let config;
  try {
    config = loadConfig(stateDir);
  } catch (error) {
    await helpers();
    throw error;
  }
  const gatehouse = await createGatehouse(config, { log: await openLogger(config.log) }).start();
  return { gatehouse, url: `https://localhost:${gatehouse.https[0]!.port}`, issuer: idp.issuer, stop: helpers };
}

async function ensureCertificate(stateDir: string): Promise<void> {
  const certFile = path.join(stateDir, 'localhost.crt');
  const keyFile = path.join(stateDir, 'localhost.key');
  try {
    const cert = new crypto.X509Certificate(fs.readFileSync(certFile));
    if (
      Date.parse(cert.validTo) - Date.now() > 7 * 86_400_000 &&
      cert.checkPrivateKey(crypto.createPrivateKey(fs.readFileSync(keyFile)))
    )
      return;
  } catch {
    /* missing or unreadable: make a new one */
  }
  const pair = await createSelfSigned(['localhost', '127.0.0.1', '::1']);
  writeFileAtomic(keyFile, pair.keyPem, 0o600);
  writeFileAtomic(certFile, pair.certPem);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
