// One ACME order for all of a site's names (one certificate, every name a SAN), HTTP-01 only:
// new order → per authorization publish the token, check it can be fetched, tell the CA, wait → finalize with a fresh
// P-256 key → download.
// Tokens stay published until the whole order is done, because the CA validates each one several times.
import acme from 'acme-client';
import type { KeyPair } from '../tls/certificate-store.ts';
import type { ChallengeTokens } from './store.ts';
import type { Directory } from './account.ts';

export interface OrderRequest {
  client: acme.Client;
  names: readonly string[];
  challenges: ChallengeTokens;
  /** ACME profile (draft-aaron-acme-profiles); sent only when configured. */
  profile?: string;
  /** ARI id of the certificate this one replaces (RFC 9773 §5), so the CA can relax rate limits. */
  replaces?: string;
  /** Resolves once the published token can be fetched as the CA will; the CA is asked to validate only then. */
  whenAnswerable?: (name: string, token: string, keyAuthorization: string) => Promise<void>;
}

export async function orderCertificate(request: OrderRequest): Promise<KeyPair> {
  const { client, names, challenges } = request;
  const published: string[] = [];
  try {
    const order = await client.createOrder({
      identifiers: names.map((value) => ({ type: 'dns', value })),
      ...(request.profile ? { profile: request.profile } : {}),
      ...(request.replaces ? { replaces: request.replaces } : {}),
    } as Parameters<acme.Client['createOrder']>[0]);
    for (const authz of await client.getAuthorizations(order)) {
      if (authz.status === 'valid') continue; // reused authorization
      const challenge = authz.challenges.find((c) => c.type === 'http-01');
      if (!challenge) throw new Error(`the CA offers no http-01 challenge for ${authz.identifier.value}`);
      const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
      published.push(challenge.token);
      await challenges.add(challenge.token, keyAuthorization);
      await request.whenAnswerable?.(authz.identifier.value, challenge.token, keyAuthorization);
      await client.completeChallenge(challenge);
      await client.waitForValidStatus(challenge);
    }
    const [keyPem, csr] = await acme.crypto.createCsr(
      { commonName: names[0], altNames: [...names] },
      await acme.crypto.createPrivateEcdsaKey(),
    );
    const finalized = await client.finalizeOrder(order, csr);
    const certPem = await client.getCertificate(finalized);
    return { certPem: certPem.endsWith('\n') ? certPem : `${certPem}\n`, keyPem: keyPem.toString() };
  } finally {
    // A token not removed (a shared store away) expires there by itself.
    for (const token of published) await Promise.resolve(challenges.remove(token)).catch(() => {});
  }
}

/** A profile the CA does not list is an error, not a silent fallback to its default certificate. */
export function requireProfile(directory: Directory, profile: string): void {
  const offered = Object.keys(directory.meta?.profiles ?? {});
  if (!offered.includes(profile))
    throw new Error(
      `the CA does not offer the ACME profile "${profile}" (offers: ${offered.join(', ') || 'no profiles'})`,
    );
}
