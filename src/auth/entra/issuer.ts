// Entra ID tenant rules, applied after openid-client has checked the ID token's signature, aud, exp and nonce.
// openid-client accepts the {tenantid} issuer template of common/organizations for login.microsoftonline.com and
// substitutes the token's tid, but it does not check that tid is a GUID nor restrict tenants: that is done here
// (https://learn.microsoft.com/entra/identity-platform/access-tokens#validate-the-issuer).
import type { Refusal } from '../policy.ts';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** template = the issuer of the discovery document: https://login.microsoftonline.com/{tenantid}/v2.0 for
 *  common/organizations, else the tenant's own, https://login.microsoftonline.com/<tenant GUID>/v2.0. */
export function checkEntraTenant(
  claims: Record<string, unknown>,
  template: string,
  allowed: readonly string[] | undefined,
): Refusal | undefined {
  const tid = claims.tid;
  if (typeof tid !== 'string' || !GUID.test(tid))
    return { rule: 'tenant', message: 'The ID token carries no valid tenant id (tid).' };
  if (claims.iss !== template.replace('{tenantid}', tid))
    return { rule: 'tenant', message: "The ID token's issuer does not belong to its tenant." };
  // A tenant's issuer names the tenant: tid must be that one, whatever iss says (Microsoft: "validate that the tid
  // claim matches the tenant in the issuer", https://learn.microsoft.com/entra/identity-platform/access-tokens#validate-the-issuer).
  // An issuer without a tenant GUID admits nobody (fail closed).
  if (!template.includes('{tenantid}') && issuerTenant(template) !== tid.toLowerCase()) {
    return { rule: 'tenant', message: "The ID token's tenant (tid) is not the tenant of this site's issuer." };
  }
  if (template.includes('{tenantid}') && !allowed)
    return { rule: 'allowed_tenants', message: 'This site admits no tenant.' };
  if (allowed && !allowed.includes('*') && !allowed.includes(tid.toLowerCase())) {
    return {
      rule: 'allowed_tenants',
      message: 'Your account belongs to a directory (tenant) that may not use this site.',
    };
  }
  return undefined;
}

/** The tenant GUID in an issuer URL's path (lower case), if any. */
function issuerTenant(issuer: string): string | undefined {
  return new URL(issuer).pathname
    .split('/')
    .find((segment) => GUID.test(segment))
    ?.toLowerCase();
}

/** Group overage: more groups than fit in a token (200) come as a pointer to Graph instead (https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference#groups-overage-claim). */
export function hasGroupOverage(claims: Record<string, unknown>): boolean {
  const names = claims._claim_names as Record<string, unknown> | undefined;
  return (typeof names === 'object' && names !== null && 'groups' in names) || claims.hasgroups === true;
}
