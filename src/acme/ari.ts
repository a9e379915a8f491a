// ACME Renewal Information (ARI, RFC 9773): the CA says when to renew. acme-client 5.4 has no ARI, so the lookup is
// here: only used when the directory advertises `renewalInfo`; otherwise the renew_ratio decides.
import * as x509 from '@peculiar/x509';
import { acmeGet } from './account.ts';

export interface RenewalWindow {
  start: Date;
  end: Date;
  explanationUrl?: string;
}

/** RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(DER serial number, without tag and length). */
export function ariCertId(certPem: string): string {
  const leaf = new x509.X509Certificate(firstPem(certPem));
  const aki = leaf.getExtension(x509.AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) throw new Error('the certificate has no Authority Key Identifier, so it has no ARI id');
  return ariCertIdFrom(aki.keyId, leaf.serialNumber);
}

/** From hex strings; the serial's DER form is the minimal two's-complement encoding (a leading 00 when the top bit is set). */
export function ariCertIdFrom(keyIdHex: string, serialHex: string): string {
  let serial = serialHex.replace(/[^0-9a-f]/gi, '').replace(/^(00)+(?=[0-9a-f]{2})/i, '');
  if (serial.length % 2 === 1) serial = `0${serial}`;
  if (/^[89a-f]/i.test(serial)) serial = `00${serial}`;
  const b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64url');
  return `${b64(keyIdHex.replace(/[^0-9a-f]/gi, ''))}.${b64(serial)}`;
}

/** Checks a renewalInfo response body (RFC 9773 §4.2); throws on anything malformed. */
export function parseRenewalInfo(body: unknown): RenewalWindow {
  const window = (body as { suggestedWindow?: { start?: unknown; end?: unknown } } | null)?.suggestedWindow;
  const start = typeof window?.start === 'string' ? new Date(window.start) : undefined;
  const end = typeof window?.end === 'string' ? new Date(window.end) : undefined;
  if (
    !start ||
    !end ||
    Number.isNaN(start.getTime()) ||
    Number.isNaN(end.getTime()) ||
    end.getTime() < start.getTime()
  ) {
    throw new Error(`malformed renewalInfo response: ${JSON.stringify(body)?.slice(0, 200)}`);
  }
  const explanation = (body as { explanationURL?: unknown }).explanationURL;
  return { start, end, ...(typeof explanation === 'string' ? { explanationUrl: explanation } : {}) };
}

/** A uniformly random moment in the window (RFC 9773 §4.2 asks clients to spread their renewals). */
export function pickRenewalTime(window: RenewalWindow, random = Math.random): Date {
  return new Date(window.start.getTime() + random() * (window.end.getTime() - window.start.getTime()));
}

/** Fetches the CA's window for a certificate; the answer's Retry-After says when to ask again (default 6 h). */
export async function fetchRenewalInfo(
  renewalInfoUrl: string,
  certPem: string,
): Promise<{ window: RenewalWindow; retryAfterMs: number }> {
  const url = `${renewalInfoUrl.replace(/\/$/, '')}/${ariCertId(certPem)}`;
  const response = await acmeGet(url);
  if (response.status !== 200) throw new Error(`renewalInfo ${url} answered ${response.status}`);
  const retryAfter = Number(response.retryAfter);
  const retryAfterMs =
    Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter, 86_400) * 1000 : 6 * 3_600_000;
  return { window: parseRenewalInfo(response.body), retryAfterMs };
}

function firstPem(chain: string): string {
  return /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(chain)?.[0] ?? chain;
}
