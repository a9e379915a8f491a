// Who the user is, from the ID token's claims. The rule (documented in the README, "Who the user is"):
//   email = the "email" claim when it is one strictly valid address and email_verified is not false;
//           with entra-id, else preferred_username, else upn, when they are strictly valid addresses
//           (Entra often omits email: learn.microsoft.com/entra/identity-platform/id-token-claims-reference);
//   user  = email, else preferred_username, else upn, else oid (entra-id), else sub.
import type { Identity } from '../session/sessions.ts';

/** Exactly one "@", a non-empty local part without spaces or controls, a domain of DNS labels. */
const EMAIL =
  /^[^\s@\p{Cc}]{1,64}@((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)$/iu;

/** The address, domain lower-cased, when text is one valid email address; attacker@evil.com@company.com is not. */
export function strictEmail(text: unknown): string | undefined {
  if (typeof text !== 'string' || text.length > 254) return undefined;
  const match = EMAIL.exec(text);
  if (!match) return undefined;
  const at = text.lastIndexOf('@');
  return `${text.slice(0, at)}@${match[1]!.toLowerCase()}`;
}

export function emailDomain(email: string): string {
  return email.slice(email.lastIndexOf('@') + 1);
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

export function identityFromClaims(
  claims: Record<string, unknown>,
  provider: 'oidc' | 'entra-id',
  groups?: string[],
): Identity {
  const preferredUsername = text(claims.preferred_username);
  const upn = text(claims.upn);
  let email = claims.email_verified === false ? undefined : strictEmail(claims.email);
  if (!email && provider === 'entra-id') email = strictEmail(preferredUsername) ?? strictEmail(upn);
  const sub = String(claims.sub);
  const oid = text(claims.oid);
  return {
    user: email ?? preferredUsername ?? upn ?? (provider === 'entra-id' ? oid : undefined) ?? sub,
    email,
    preferredUsername,
    groups: groups ?? strings(claims.groups),
    roles: strings(claims.roles),
    sub,
    tid: text(claims.tid),
    oid,
  };
}
