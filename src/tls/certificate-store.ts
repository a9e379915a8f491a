// The certificates Gatehouse serves, chosen per TLS handshake by SNI. A site's SecureContext can be replaced at
// run time (ACME renewals): new handshakes get the new certificate, open connections keep the one they started with.
import crypto from 'node:crypto';
import tls from 'node:tls';
import { NameIndex } from './name-index.ts';

/**
 * Mozilla's "intermediate" profile (https://ssl-config.mozilla.org/#config=intermediate): TLS 1.2 and 1.3 only;
 * in TLS 1.2 ECDHE key exchange (forward secrecy) with AEAD ciphers only, so no RSA key exchange, CBC (LUCKY13),
 * SHA-1 or ARIA; TLS 1.3's three suites in Node's order. All of them are strong, so the client picks (Mozilla: no
 * server preference; a phone without AES instructions takes ChaCha20).
 */
const CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * No renegotiation: a client's renegotiation gets a no_renegotiation alert (HTTP/2 forbids it anyway, and it only
 * ever served client certificates, which Gatehouse does not ask for; CVE-2011-1473 made it a CPU lever).
 * No session resumption (no tickets, no session cache): OpenSSL resumes a session under any SNI, and Node does
 * not keep the server name in the session (a resumed TLS 1.2 connection has `servername === false`,
 * https://github.com/nodejs/node/issues/57175), so a resumed connection could not be tied to the site whose
 * certificate it was made with. Every connection makes a full handshake and its SNI picks the site.
 */
const SECURE_OPTIONS = crypto.constants.SSL_OP_NO_RENEGOTIATION | crypto.constants.SSL_OP_NO_TICKET;

export const TLS_DEFAULTS = {
  minVersion: 'TLSv1.2',
  ciphers: CIPHERS,
  honorCipherOrder: false,
  secureOptions: SECURE_OPTIONS,
} as const;

export interface KeyPair {
  certPem: string;
  keyPem: string;
}

export class CertificateStore {
  private contexts = new NameIndex<tls.SecureContext>();
  private readonly sites = new Map<
    string,
    { names: readonly string[]; context: tls.SecureContext; pair: KeyPair; notAfter: Date }
  >();
  private readonly defaultSite: string | undefined;
  private readonly listeners = new Set<(pair: KeyPair) => void>();

  constructor(options: { defaultSite?: string } = {}) {
    this.defaultSite = options.defaultSite;
  }

  /** Installs or replaces the key pair a site's names are served with. */
  setSite(siteName: string, names: readonly string[], pair: KeyPair): void {
    const context = tls.createSecureContext({ ...TLS_DEFAULTS, cert: pair.certPem, key: pair.keyPem });
    this.sites.set(siteName, {
      names,
      context,
      pair,
      notAfter: new Date(new crypto.X509Certificate(pair.certPem).validTo),
    });
    const next = new NameIndex<tls.SecureContext>();
    for (const site of this.sites.values()) for (const name of site.names) next.set(name, site.context);
    this.contexts = next;
    if (siteName === this.defaultSite) for (const notify of this.listeners) notify(pair);
  }

  /** When each site's served certificate expires (for the metrics). */
  expiries(): Array<{ site: string; notAfter: Date }> {
    return [...this.sites].map(([site, { notAfter }]) => ({ site, notAfter }));
  }

  lookup(servername: string): tls.SecureContext | undefined {
    return this.contexts.get(servername.toLowerCase());
  }

  /** The context a handshake with this SNI gets: the site's, else the default site's, else none. */
  select(servername: string): tls.SecureContext | undefined {
    return this.lookup(servername) ?? (this.defaultSite ? this.lookup(this.defaultSite) : undefined);
  }

  /** The pair served to clients without SNI (and with unknown names), if a default site is configured. */
  defaultPair(): KeyPair | undefined {
    return this.defaultSite ? this.sites.get(this.defaultSite)?.pair : undefined;
  }

  /** Called with the new default pair whenever the default site's certificate changes. */
  onDefaultChange(listener: (pair: KeyPair) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Options for tls/https/http2 servers: SNI picks the context; no SNI gets the default site, else a handshake failure. */
  serverOptions(): tls.TlsOptions {
    const fallback = this.defaultPair();
    return {
      ...TLS_DEFAULTS,
      ...(fallback ? { cert: fallback.certPem, key: fallback.keyPem } : {}),
      // A name no site serves, without a default site, goes on with no certificate at all, so OpenSSL ends the
      // handshake with a handshake_failure alert, as for a client without SNI. (Passing an error here would drop
      // the connection without any alert; Node offers no way to send unrecognized_name.)
      SNICallback: (servername, callback) => callback(null, this.select(servername)),
    };
  }
}
