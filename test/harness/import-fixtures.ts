// `gatehouse import` fixtures (test/fixtures/import/) copied to a temporary folder with the machine paths they name
// made real there, and the CLI run as a child process.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestCa } from './pki.ts';
import { MAIN } from './spawn-gatehouse.ts';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/import');
/** The CA of the certificates fixtureCopy() makes. */
export const ca = createTestCa();

/** `gatehouse ARGS` from source, without the OAUTH2_PROXY_* variables of this process (env adds its own). */
export function gatehouse(args: string[], env: NodeJS.ProcessEnv = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OAUTH2_PROXY_')));
  const result = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...clean, ...env } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * A copy of a fixture in a temporary folder, with the machine paths it names pointed at files made there:
 * certificates under /data/certs/NAME/, secrets under /etc/oauth2-proxy/, certbot's options file.
 */
export function fixtureCopy(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `gatehouse-import-${name}-`));
  fs.cpSync(path.join(FIXTURES, name), path.join(dir, 'in'), { recursive: true });
  const certs = path.join(dir, 'certs');
  const files = fs
    .readdirSync(path.join(dir, 'in'), { recursive: true, encoding: 'utf8' })
    .map((f) => path.join(dir, 'in', f));
  for (const file of files) {
    if (!fs.statSync(file).isFile()) continue;
    const text = fs.readFileSync(file, 'utf8');
    for (const [, site] of text.matchAll(/\/data\/certs\/([\w.-]+)\//g)) {
      if (fs.existsSync(path.join(certs, site!))) continue;
      const leaf = ca.issue([site === 'default' ? 'default.example.test' : site!]);
      fs.mkdirSync(path.join(certs, site!), { recursive: true });
      fs.copyFileSync(leaf.certFile, path.join(certs, site!, 'fullchain.pem'));
      fs.copyFileSync(leaf.keyFile, path.join(certs, site!, 'privkey.pem'));
    }
    fs.writeFileSync(
      file,
      text
        .replaceAll('/data/certs/', `${certs}/`)
        .replaceAll('/etc/oauth2-proxy/', `${dir}/in/`)
        .replaceAll('/etc/letsencrypt/options-ssl-nginx.conf', `${dir}/in/options-ssl-nginx.conf`),
    );
  }
  return dir;
}
