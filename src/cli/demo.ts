// `gatehouse demo` (what `npm start` runs): https://localhost:8443 in front of a built-in echo backend, with nothing
// to configure. It writes a real configuration into ./certs/demo/ and serves it through the normal path, so the
// demo exercises exactly what `serve` does. The self-signed certificate is made once and reused.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../config/load.ts';
import { startEchoBackend } from '../demo/echo-backend.ts';
import { createLogger } from '../observability/logger.ts';
import { writeFileAtomic } from '../runtime/atomic-write.ts';
import { startListeners } from '../runtime/listeners.ts';
import { buildRuntime } from '../runtime/runtime.ts';
import { createSelfSigned } from '../tls/self-signed.ts';
import { reportConfigError } from './check.ts';
import { stopOnSignals } from './serve.ts';

export const DEMO_PORT = 8443;

export async function demo(stateDir = path.resolve('certs', 'demo'), port = DEMO_PORT): Promise<number> {
  const backend = await startEchoBackend();
  await ensureCertificate(stateDir);
  writeFileAtomic(path.join(stateDir, 'gatehouse.toml'), `# Written by \`gatehouse demo\` on every start; edit config/ for a real setup.
[https]
listen = ["127.0.0.1:${port}"]
default_site = "localhost"

[log]
format = "pretty"
`);
  writeFileAtomic(path.join(stateDir, 'sites', 'localhost.toml'), `server_names = ["localhost"]
deny_paths = ['/\\.ht']

[tls]
cert = "localhost.crt"
key = "localhost.key"

[[routes]]
path = "/"
upstream = "${backend.url}"
`);
  let config;
  try { config = loadConfig(stateDir); } catch (error) { await backend.close(); return reportConfigError(error); }
  const log = createLogger(config.log);
  const listening = await startListeners(buildRuntime(config, log));
  log.info(`demo ready: open https://localhost:${listening.https[0]!.port}/ (self-signed certificate: accept it, or curl -k)`);
  stopOnSignals(listening, () => backend.close());
  return new Promise(() => {});
}

async function ensureCertificate(stateDir: string): Promise<void> {
  const certFile = path.join(stateDir, 'localhost.crt');
  const keyFile = path.join(stateDir, 'localhost.key');
  try {
    const cert = new crypto.X509Certificate(fs.readFileSync(certFile));
    if (Date.parse(cert.validTo) - Date.now() > 7 * 86_400_000 && cert.checkPrivateKey(crypto.createPrivateKey(fs.readFileSync(keyFile)))) return;
  } catch { /* missing or unreadable: make a new one */ }
  const pair = await createSelfSigned(['localhost', '127.0.0.1', '::1']);
  writeFileAtomic(keyFile, pair.keyPem, 0o600);
  writeFileAtomic(certFile, pair.certPem);
}
