// [store] of gatehouse.toml resolved for use: the Redis address (url or Sentinel), the CA read, durations in ms.
// Problems are reported at their store.* key.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { StoreConfig } from './model.ts';
import type { Report } from './problems.ts';
import type { GlobalSettings } from './schema.ts';

export function storeConfig(raw: GlobalSettings['store'], configDir: string, problem: Report): StoreConfig {
  const base = {
    prefix: raw.prefix,
    commandTimeoutMs: raw.command_timeout,
    graceMs: raw.grace,
  };
  if (raw.backend === 'local') {
    for (const key of ['url', 'password', 'ca', 'master_name', 'encryption_key'] as const)
      if (raw[key] !== undefined) problem(['store', key], `${key} is for backend = "redis"`);
    if (raw.sentinels.length > 0) problem(['store', 'sentinels'], 'sentinels is for backend = "redis"');
    return { backend: 'local', ...base };
  }
  if (raw.command_timeout <= 0) problem(['store', 'command_timeout'], 'command_timeout must be more than 0');
  const sentinels = raw.sentinels.map((text) => {
    const colon = text.lastIndexOf(':');
    return { host: text.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port: Number(text.slice(colon + 1)) };
  });
  if (sentinels.length > 0 && raw.master_name === undefined)
    problem(['store', 'master_name'], 'sentinels need master_name (the name the Sentinels monitor)');
  if (raw.master_name !== undefined && sentinels.length === 0)
    problem(['store', 'sentinels'], 'master_name needs sentinels = ["host:port", …]');
  if (raw.url === undefined && sentinels.length === 0)
    problem(['store', 'url'], 'backend = "redis" needs url = "redis://host:6379" (or sentinels + master_name)');
  let url: URL | undefined;
  if (raw.url !== undefined) {
    try {
      url = new URL(raw.url);
      if (url.hostname === '' || (url.pathname !== '' && url.pathname !== '/' && !/^\/\d{1,2}$/.test(url.pathname)))
        throw new Error('no host');
    } catch {
      problem(
        ['store', 'url'],
        'not a Redis URL (examples: "redis://10.0.0.5:6379", "rediss://redis.internal:6380/0")',
      );
    }
  }
  const tls = url?.protocol === 'rediss:';
  let caPem: string | undefined;
  if (raw.ca !== undefined) {
    const file = path.resolve(configDir, raw.ca);
    if (!tls && sentinels.length === 0) problem(['store', 'ca'], 'ca is for rediss:// (TLS) URLs');
    try {
      caPem = fs.readFileSync(file, 'utf8');
      new crypto.X509Certificate(caPem);
    } catch (error) {
      problem(
        ['store', 'ca'],
        caPem === undefined
          ? `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`
          : `${file} is not a PEM certificate`,
      );
    }
  }
  const password = raw.password ?? (url?.password ? decodeURIComponent(url.password) : undefined);
  const encryptionKey = raw.encryption_key === undefined ? undefined : decodeKey(raw.encryption_key);
  if (raw.encryption_key !== undefined && !encryptionKey)
    problem(['store', 'encryption_key'], 'must be 32 bytes, raw or base64 encoded (openssl rand -base64 32)');
  return {
    backend: 'redis',
    ...base,
    redis: {
      host: url?.hostname.replace(/^\[(.*)\]$/, '$1') ?? '',
      port: url?.port ? Number(url.port) : 6379,
      db: url && /^\/\d+$/.test(url.pathname) ? Number(url.pathname.slice(1)) : 0,
      ...(url?.username ? { username: decodeURIComponent(url.username) } : {}),
      ...(password ? { password } : {}),
      tls: tls || (caPem !== undefined && sentinels.length > 0),
      ...(caPem ? { caPem } : {}),
      sentinels,
      ...(raw.master_name ? { masterName: raw.master_name } : {}),
    },
    ...(encryptionKey ? { encryptionKey } : {}),
  };
}

/** AES-256 needs 32 bytes: base64 (or base64url) that decodes to 32 bytes, else 32 raw bytes. */
function decodeKey(text: string): Buffer | undefined {
  if (/^[A-Za-z0-9+/_-]+=*$/.test(text)) {
    const decoded = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
    if (decoded.length === 32) return decoded;
  }
  const raw = Buffer.from(text, 'utf8');
  return raw.length === 32 ? raw : undefined;
}
