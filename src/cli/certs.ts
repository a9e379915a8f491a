// `gatehouse certs list` and `gatehouse certs renew <domain>`: what the certificates are, and a renewal on demand.
// Both read the configuration and the [acme] storage folder; neither needs the server to be running.
// A renewal done here is written to storage; a running `gatehouse serve` sees the new files and serves them at once.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pretty from 'pino-pretty';
import { AcmeManager } from '../acme/manager.ts';
import { CertStorage } from '../acme/storage.ts';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/model.ts';
import { createLogger } from '../observability/logger.ts';
import { CertificateStore } from '../tls/certificate-store.ts';
import { reportConfigError } from './check.ts';

export async function certs(
  configDir: string,
  args: string[],
  out: (text: string) => void = (t) => process.stdout.write(t),
): Promise<number> {
  let config: Config;
  try {
    config = loadConfig(configDir);
  } catch (error) {
    return reportConfigError(error);
  }
  const [action, domain, ...extra] = args;
  if (action === 'list' && !domain) {
    out(certsTable(config));
    return 0;
  }
  if (action === 'renew' && domain && extra.length === 0) return renew(config, domain, out);
  process.stderr.write('usage: gatehouse certs list | gatehouse certs renew <domain>\n');
  return 64;
}

export function certsTable(config: Config): string {
  const storage = new CertStorage(config.acme.storageDir);
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
    const stored = storage.read(site.name);
    const meta = storage.readMeta(site.name);
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
  }
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
