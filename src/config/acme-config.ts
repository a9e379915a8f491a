// [acme] of gatehouse.toml resolved for use: the named directory replaced by its URL, paths made absolute,
// the extra CA root read. Problems are reported at their acme.* key.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { AcmeConfig } from './model.ts';
import type { Report } from './problems.ts';
import { ACME_DIRECTORIES, type GlobalSettings } from './schema.ts';

export function acmeConfig(raw: GlobalSettings['acme'], configDir: string, problem: Report): AcmeConfig {
  const storageDir = path.resolve(configDir, raw.storage);
  let caRootPem: string | undefined;
  if (raw.ca_root !== undefined) {
    const file = path.resolve(configDir, raw.ca_root);
    try {
      caRootPem = fs.readFileSync(file, 'utf8');
      new crypto.X509Certificate(caRootPem);
    } catch (error) {
      problem(
        ['acme', 'ca_root'],
        caRootPem === undefined
          ? `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`
          : `${file} is not a PEM certificate`,
      );
    }
  }
  if (raw.retry_max < raw.retry_min) problem(['acme', 'retry_max'], 'retry_max is shorter than retry_min');
  return {
    directoryUrl: ACME_DIRECTORIES[raw.directory] ?? raw.directory,
    ...(raw.email ? { email: raw.email } : {}),
    termsOfServiceAgreed: raw.terms_of_service_agreed,
    storageDir,
    accountKeyFile: path.resolve(storageDir, raw.account_key),
    renewRatio: raw.renew_ratio,
    ...(raw.profile ? { profile: raw.profile } : {}),
    httpPort: raw.http_port,
    checkIntervalMs: raw.check_interval,
    retryMinMs: raw.retry_min,
    retryMaxMs: raw.retry_max,
    ...(caRootPem ? { caRootPem } : {}),
  };
}
