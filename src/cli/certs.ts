// `gatehouse certs list`, `gatehouse certs renew <domain>` and `gatehouse certs export --out DIR`: what the
// certificates are, a renewal on demand, and every stored certificate and key as files (for operators and backups).
// They read the configuration and the ACME store it names ([acme] storage folder, or Redis with [store] backend =
// "redis"); none needs the server to be running. A renewal done here is stored; a running `gatehouse serve` sees it
// (new files, or the Redis publish) and serves it at once.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import pretty from 'pino-pretty';
import { writeFileAtomic } from '../base/atomic-write.ts';
import { AcmeManager } from '../acme/manager.ts';
import { openAcmeStore } from '../acme/open-store.ts';
import type { AcmeStore } from '../acme/store.ts';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/model.ts';
import { createLogger } from '../observability/logger.ts';
import { CertificateStore } from '../tls/certificate-store.ts';
import { reportConfigError } from './check.ts';

export async function certs(
  configDir: string,
  args: string[],
  out: (text: string) => void = (t) => process.stdout.write(t),
  exportDir?: string,
): Promise<number> {
  let config: Config;
  try {
    config = loadConfig(configDir);
  } catch (error) {
    return reportConfigError(error);
  }
  const [action, domain, ...extra] = args;
  if (action === 'export' && !domain && exportDir) return exportCerts(config, path.resolve(exportDir), out);
  if (exportDir === undefined && action === 'list' && !domain) {
    try {
      out(await certsTable(config));
    } catch (error) {
      process.stderr.write(`${(error as Error).message}\n`);
      return 1;
    }
    return 0;
  }
  if (exportDir === undefined && action === 'renew' && domain && extra.length === 0) return renew(config, domain, out);
  process.stderr.write(
    'usage: gatehouse certs list | gatehouse certs renew <domain> | gatehouse certs export --out <dir>\n',
  );
  return 64;
}

/** The configured store, answering (Redis connected) or an error that says where it is. */
async function openStore(config: Config): Promise<AcmeStore> {
  const store = openAcmeStore(config);
  if (!(await store.whenReady(STORE_WAIT_MS))) {
    await store.close();
    throw new Error(`the ACME storage (${store.where}) does not answer within ${STORE_WAIT_MS / 1000} s`);
  }
  return store;
}

const STORE_WAIT_MS = 5_000;

export async function certsTable(config: Config): Promise<string> {
  const storage = await openStore(config);
  try {
    return await table(config, storage);
  } finally {
    await storage.close();
  }
}

async function table(config: Config, storage: AcmeStore): Promise<string> {
  const rows = [['DOMAIN', 'SOURCE', 'ISSUER', 'NOT AFTER', 'NEXT RENEWAL', 'LAST ERROR']];
  for (const site of config.sites) {
    if (site.tls.source === 'files') {
      const leaf = new crypto.X509Certificate(site.tls.certPem);
      rows.push([
        site.name,
        `files ${site.tls.certFile}`,
        commonName(leaf.issuer),
        iso(new Date(leaf.validTo)),
        '- (not managed)',
        '-',
      ]);
      continue;
    }
    const stored = await storage.read(site.name);
    const meta = await storage.readMeta(site.name);
    const lastError =
      meta?.last_error && (!meta.ordered_at || (meta.last_error_at ?? '') > meta.ordered_at)
        ? `${meta.last_error_at} ${meta.last_error}`
        : '-';
    if (stored.state !== 'ok') {
      rows.push([
        site.name,
        stored.state === 'missing' ? 'acme (none yet)' : `acme (corrupt: ${stored.reason})`,
        '-',
        '-',
        'now',
        lastError,
      ]);
      continue;
    }
    const next =
      meta?.serial === stored.info.serial && meta.next_renewal
        ? `${iso(new Date(meta.next_renewal))} (${meta.renewal_source ?? 'ratio'})`
        : 'unknown';
    const source = stored.problem ? `acme (the newest is unusable, serving the one before: ${stored.problem})` : 'acme';
    rows.push([site.name, source, stored.info.issuer, iso(stored.info.notAfter), next, lastError]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return (
    rows
      .map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '))
      .join('\n') + '\n'
  );
}

async function renew(config: Config, domain: string, out: (text: string) => void): Promise<number> {
  // Human-readable log lines on stderr, so stdout carries only the result.
  const log = createLogger(
    { level: config.log.level === 'info' ? 'warn' : config.log.level, format: 'json' },
    pretty({
      destination: 2,
      sync: true,
      colorize: false,
      singleLine: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
    }),
  );
  const manager = new AcmeManager(config, new CertificateStore(), log);
  // If `serve` is running it holds the HTTP port and answers our tokens from the shared storage folder;
  // otherwise we answer them ourselves for the duration of the order.
  const servers = await Promise.all(
    config.http.listen.map(
      (address) =>
        new Promise<http.Server | undefined>((resolve) => {
          const respond = manager.responder();
          const server = http.createServer((req, res) => {
            if (!respond(req, res, '-')) res.writeHead(404).end();
          });
          server.once('error', () => resolve(undefined));
          server.listen(address.port, address.host, () => resolve(server));
        }),
    ),
  );
  manager.setHttpListeners(servers.flatMap((server) => (server ? [server.address() as AddressInfo] : [])));
  try {
    const started = performance.now();
    const info = await manager.renewNow(domain);
    out(
      `${domain}: new certificate from ${info.issuer}, serial ${info.serial}, valid until ${iso(info.notAfter)} ` +
        `(ordered in ${Math.round(performance.now() - started)} ms; a running gatehouse serves it for new connections now)\n`,
    );
    return 0;
  } catch (error) {
    process.stderr.write(`${domain}: renewal failed: ${(error as Error).message}\n`);
    return 1;
  } finally {
    for (const server of servers) server?.close();
    await manager.stop();
  }
}

/** A domain as a folder name: a DNS name, nothing that could leave the output folder (the names come from the store). */
const DOMAIN_FOLDER = /^(?!.*\.\.)[a-z0-9_*][a-z0-9_.-]{0,252}$/i;

/** Every stored certificate and key as <dir>/<domain>/fullchain.pem (0644) and privkey.pem (0600), each written to a
 *  temporary file and renamed, so a reader never sees half a file. Exit 1 when one could not be exported. */
async function exportCerts(config: Config, dir: string, out: (text: string) => void): Promise<number> {
  let store: AcmeStore;
  try {
    store = await openStore(config);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    return 1;
  }
  let failed = 0;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const domain of await store.domains()) {
      if (!DOMAIN_FOLDER.test(domain)) {
        process.stderr.write(`${JSON.stringify(domain)}: not a domain name, skipped\n`);
        failed++;
        continue;
      }
      const stored = await store.read(domain);
      if (stored.state !== 'ok') {
        process.stderr.write(`${domain}: ${stored.state === 'corrupt' ? stored.reason : 'nothing stored'}, skipped\n`);
        failed++;
        continue;
      }
      const folder = path.join(dir, domain);
      fs.mkdirSync(folder, { recursive: true, mode: 0o700 });
      writeFileAtomic(path.join(folder, 'privkey.pem'), stored.pair.keyPem, 0o600);
      writeFileAtomic(path.join(folder, 'fullchain.pem'), stored.pair.certPem, 0o644);
      out(
        `${domain}: serial ${stored.info.serial}, valid until ${iso(stored.info.notAfter)} -> ${folder}/{fullchain,privkey}.pem\n`,
      );
    }
  } catch (error) {
    process.stderr.write(`export failed: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await store.close();
  }
  return failed > 0 ? 1 : 0;
}

function commonName(dn: string): string {
  return (
    dn
      .split('\n')
      .find((line) => line.startsWith('CN='))
      ?.slice(3) ?? dn.replaceAll('\n', ', ')
  );
}

function iso(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
