// Who may enter a site (fail closed): email_domains / authenticated_emails_file, allowed_groups, allowed_roles,
// allowed_tenants. Every configured rule must admit the user; the refusal names the rule, never a token.
import fs from 'node:fs';
import type { AuthSettings } from '../config/model.ts';
import type { Identity } from '../session/sessions.ts';
import { emailDomain } from './identity.ts';

export interface Refusal {
  rule: string;
  message: string;
}

export class Policy {
  readonly #settings: AuthSettings;
  readonly #emails: EmailsFile | undefined;

  constructor(settings: AuthSettings) {
    this.#settings = settings;
    this.#emails = settings.authenticatedEmailsFile ? new EmailsFile(settings.authenticatedEmailsFile) : undefined;
  }

  authorize(identity: Identity): Refusal | undefined {
    const s = this.#settings;
    const who = identity.email ?? identity.user;
    if (
      s.allowedTenants &&
      !s.allowedTenants.includes('*') &&
      !(identity.tid && s.allowedTenants.includes(identity.tid.toLowerCase()))
    ) {
      return {
        rule: 'allowed_tenants',
        message: `The account ${who} belongs to a directory (tenant) that may not use this site.`,
      };
    }
    if (s.emailDomains || this.#emails) {
      if (!identity.email)
        return {
          rule: 'email_domains',
          message: `The account ${who} has no valid email address, and this site admits users by email.`,
        };
      const byFile = this.#emails?.has(identity.email) ?? false;
      if (!byFile && !domainAllowed(emailDomain(identity.email), s.emailDomains ?? [])) {
        const rule = s.emailDomains ? 'email_domains' : 'authenticated_emails_file';
        return { rule, message: `The account ${identity.email} is not admitted by this site's ${rule}.` };
      }
    }
    if (s.allowedGroups && !identity.groups.some((g) => s.allowedGroups!.includes(g))) {
      return { rule: 'allowed_groups', message: `The account ${who} is not a member of a group this site admits.` };
    }
    if (s.allowedRoles && !identity.roles.some((r) => s.allowedRoles!.includes(r))) {
      return { rule: 'allowed_roles', message: `The account ${who} has no role this site admits.` };
    }
    return undefined;
  }
}

/** "*" = any; "example.com" = exactly that domain; ".example.com" = any subdomain of it (label-wise, as oauth2-proxy). */
function domainAllowed(domain: string, allowed: string[]): boolean {
  return allowed.some((rule) => rule === '*' || rule === domain || (rule.startsWith('.') && domain.endsWith(rule)));
}

/** authenticated_emails_file: one address per line; re-read when the file changes (checked at most every 5 s). */
class EmailsFile {
  readonly #file: string;
  #emails = new Set<string>();
  #mtimeMs = -1;
  #checkedAt = 0;

  constructor(file: string) {
    this.#file = file;
    this.#reload();
  }

  has(email: string): boolean {
    const now = Date.now();
    if (now - this.#checkedAt > 5_000) this.#reload();
    return this.#emails.has(email.toLowerCase());
  }

  #reload(): void {
    this.#checkedAt = Date.now();
    try {
      const { mtimeMs } = fs.statSync(this.#file);
      if (mtimeMs === this.#mtimeMs) return;
      this.#mtimeMs = mtimeMs;
      this.#emails = new Set(
        fs
          .readFileSync(this.#file, 'utf8')
          .split(/\r?\n/)
          .map((l) => l.trim().toLowerCase())
          .filter((l) => l && !l.startsWith('#')),
      );
    } catch {
      // Fail closed: an unreadable file admits nobody.
      this.#emails = new Set();
      this.#mtimeMs = -1;
    }
  }
}
