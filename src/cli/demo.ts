// `gatehouse demo` (what `npm start` runs): https://localhost:8443 in front of a built-in echo backend, or of the
// user's own application (`--upstream URL`), protected by an embedded identity provider (two users: alice, bob; any
// password), with nothing to configure. It writes a real configuration into ./certs/demo/ and serves it through the
// normal path, so the demo exercises exactly what `serve` does; `--print-config` prints that configuration. The
// self-signed certificate is made once and reused.
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

/** Where the demo writes its configuration and certificate, relative to the working folder. */
export const DEMO_DIR = path.join('certs', 'demo');
const SITE_FILE = path.join('sites', 'localhost.toml');

export async function demo(
  stateDir = path.resolve(DEMO_DIR),
  port = DEMO_PORT,
  upstream: string | undefined = undefined,
): Promise<number> {
  catchStopSignals();
  let running: RunningDemo;
  try {
    running = await startDemo(stateDir, port, false, upstream);
  } catch (error) {
    return reportConfigError(error);
  }
  const { log } = running.gatehouse;
  log.info(
    `demo ready: open ${running.url}/ (self-signed certificate: accept it, or curl -k) and sign in as alice or bob, any password` +
      (upstream ? `; your application ${upstream} gets the identity headers` : ''),
  );
  stopOnSignals(running.gatehouse, () => running.stop());
  return new Promise(() => {});
}

/**
 * `--upstream URL`: the origin of the user's application, or an Error saying why not. Only http:// and https://
 * origins: the demo forwards every path as requested, as any route does (site.ts refuses paths and credentials too).
 */
export function parseUpstream(text: string): string | Error {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return new Error(`--upstream ${text}: not a URL; give your application's address, e.g. http://127.0.0.1:3000`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return new Error(`--upstream ${text}: only http:// and https:// applications can be proxied`);
  if (url.username || url.password) return new Error(`--upstream ${text}: credentials in the URL are not supported`);
  if (url.pathname !== '/' || url.search || url.hash)
    return new Error(
      `--upstream ${text}: give the origin only (scheme, host, port): every request path is forwarded as it comes`,
    );
  return url.origin;
}

/**
 * `--print-config`: the configuration the last `gatehouse demo` in this folder wrote, both files, each under a
 * `# ==> file <==` line (as `tail` prints several files). Exit 2 when no demo has run here yet.
 */
export function printConfig(stateDir = DEMO_DIR): number {
  const files = ['gatehouse.toml', SITE_FILE].map((name) => path.join(stateDir, name));
  let texts: string[];
  try {
    texts = files.map((file) => fs.readFileSync(file, 'utf8'));
  } catch {
    process.stderr.write(
      `no demo configuration in ${stateDir}: run \`gatehouse demo\` (--upstream URL for your application) here first\n`,
    );
    return 2;
  }
  process.stdout.write(files.map((file, i) => `# ==> ${file} <==\n${texts[i]}`).join('\n'));
  return 0;
}

/**
 * Starts the upstream (the echo backend unless `upstream` names the user's application), the identity provider and
 * Gatehouse; stop() ends the helpers (Gatehouse is stopped by the caller).
 */
export async function startDemo(
  stateDir: string,
  requestedPort: number,
  quiet = false,
  upstream?: string,
): Promise<RunningDemo> {
  // The provider must know the redirect URI (with its port) before it starts, so port 0 is resolved here first.
  const port = requestedPort === 0 ? await freePort() : requestedPort;
  const backend = upstream ? { url: upstream, close: async () => {} } : await startEchoBackend();
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
    `# Written by \`gatehouse demo\` on every start (\`gatehouse demo --print-config\` prints it): a start for your own
# configuration folder; README "Configuration" and config/ show every setting.
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
    path.join(stateDir, SITE_FILE),
    `server_names = ["localhost"]
deny_paths = ['/\\.ht']

# A self-signed certificate made by the demo; for a public name use \`acme = true\` instead of cert and key.
[tls]
cert = "localhost.crt"
key = "localhost.key"

# ${upstream ? 'Your application' : "The demo's echo backend: it shows the headers it received"}.
[[routes]]
path = "/"
upstream = "${backend.url}"

# The embedded demo identity provider (oidc-provider on loopback; http:// is accepted for loopback issuers only).
[auth]
provider = "oidc"
oidc_issuer_url = "${idp.issuer}"
client_id = "${idp.clientId}"
client_secret = "${idp.clientSecret}"
# A new secret on every demo start; for your own configuration make one that stays (openssl rand -base64 32) and keep
# it out of the file: cookie_secret = "\${env:COOKIE_SECRET}".
cookie_secret = "${crypto.randomBytes(32).toString('base64')}"
email_domains = ["*"]
pass_access_token = false
${
  upstream
    ? '# Every page asks for a login; skip_auth_routes = ["^/public/"] would open a path to anyone.'
    : `# /public/ is open to anyone (curl -k https://localhost:${port}/public/ shows what the backend receives);
# everything else asks for a login.
skip_auth_routes = ["^/public/"]`
}
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
