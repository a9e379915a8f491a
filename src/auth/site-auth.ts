// A site's authentication: its provider client, sessions, login-state cookies and policy, plus the two
// operations the request path needs: authenticate (cookie → session → refresh when due, once per session) and
// establish (tokens → identity → tenant/overage checks), used by the callback and by refresh alike.
import type { AuthSettings } from '../config/auth-settings.ts';
import type { Logger } from '../observability/logger.ts';
import { readCookie } from '../session/cookies.ts';
import { LoginStateCookies } from '../session/login-state.ts';
import { SiteSessions, type Identity, type Session } from '../session/sessions.ts';
import type { SessionStore } from '../session/store.ts';
import { verifyBearer } from './bearer.ts';
import { checkEntraTenant, hasGroupOverage } from './entra/issuer.ts';
import { graphGroups, GraphGroupsError } from './entra/graph-groups.ts';
import { identityFromClaims } from './identity.ts';
import { ownedAuthHeaders } from './identity-headers.ts';
import { OidcClient, providerErrorFields, type FetchLike } from './oidc/client.ts';
import { refreshTokens, type TokenSet } from './oidc/callback.ts';
import { Policy, type Refusal } from './policy.ts';

/** Refresh this long before the access token expires, so upstreams never receive one that is about to lapse. */
const REFRESH_MARGIN_MS = 60_000;
/** After a failed refresh (provider down), the session's current tokens are used this long before trying again. */
const REFRESH_RETRY_MS = 30_000;
/** How long one process may take to refresh a session before another may try (cluster workers). */
const REFRESH_LEASE_MS = 30_000;
/** Errors after which the session is over and the user must log in again (RFC 6749 §5.2, OpenID Connect Core §3.1.2.6). */
const FATAL_REFRESH_ERRORS = new Set(['invalid_grant', 'interaction_required', 'login_required', 'consent_required', 'invalid_client']);

export class SiteAuth {
  readonly settings: AuthSettings;
  readonly oidc: OidcClient;
  readonly sessions: SiteSessions;
  readonly loginCookies: LoginStateCookies;
  readonly policy: Policy;
  readonly siteNames: readonly string[];
  /** Normalized header names clients may not send to this site's upstreams (beyond OWNED_HEADERS). */
  readonly ownedHeaders: ReadonlySet<string>;
  /** Refresh counter, for tests and metrics. */
  refreshes = 0;
  readonly #log: Logger;
  readonly #refreshing = new Map<string, Promise<Session | undefined>>();
  readonly #refreshFailedAt = new Map<string, number>();

  constructor(siteName: string, siteNames: readonly string[], settings: AuthSettings, store: SessionStore,
    options: { cacheSize: number; sharedStore: boolean; fetch?: FetchLike }, log: Logger) {
    this.settings = settings;
    this.siteNames = siteNames;
    this.#log = log.child({ site: siteName });
    this.oidc = new OidcClient(settings, this.#log, options.fetch);
    this.sessions = new SiteSessions(siteName, settings.secret, settings.cookieName, store, options.cacheSize, {
      shared: options.sharedStore,
      inMemory: {
        accessToken: settings.passAccessToken || (settings.passAuthorizationHeader && settings.authorizationToken === 'access_token'),
        idToken: settings.passAuthorizationHeader && settings.authorizationToken === 'id_token',
      },
    });
    this.loginCookies = new LoginStateCookies(settings.secret, settings.cookieName);
    this.policy = new Policy(settings);
    this.ownedHeaders = ownedAuthHeaders(settings);
  }

  /** skip_auth_routes, matched on the normalized path only: a query string or "%23" cannot widen them. */
  skips(method: string | undefined, pathname: string): boolean {
    return this.settings.skipAuthRoutes.some((r) => (r.method === undefined || r.method === method) && r.pattern.test(pathname) !== r.negate);
  }

  /** The session of this request (refreshed when due), a bearer identity, or undefined when anonymous. */
  async authenticate(headers: Record<string, string | string[] | undefined>): Promise<Session | undefined> {
    const session = this.sessions.fromCookie(readCookie(headers.cookie, this.sessions.cookieName));
    if (session) return this.#refreshDue(session) ? this.#refreshOnce(session) : session;
    if (this.settings.skipJwtBearerTokens && typeof headers.authorization === 'string') return verifyBearer(this, headers.authorization);
    return undefined;
  }

  /** Tokens (from a callback or a refresh) → identity, with Entra's tenant rules and group overage. */
  async establish(tokens: TokenSet, previous?: Identity): Promise<{ identity: Identity } | { refusal: Refusal }> {
    const claims = tokens.claims;
    if (Object.keys(claims).length === 0 && previous) return { identity: previous };
    let groups: string[] | undefined;
    if (this.settings.provider === 'entra-id') {
      const config = await this.oidc.configuration();
      const metadata = config.serverMetadata();
      const refusal = checkEntraTenant(claims, metadata.issuer, this.settings.allowedTenants);
      if (refusal) return { refusal };
      if (hasGroupOverage(claims)) {
        if (!tokens.accessToken) return { refusal: { rule: 'allowed_groups', message: 'Group membership could not be read: no access token for Microsoft Graph.' } };
        try {
          groups = await graphGroups(this.oidc.fetch, String(metadata.msgraph_host ?? 'graph.microsoft.com'), tokens.accessToken);
        } catch (error) {
          if (!(error instanceof GraphGroupsError)) throw error;
          this.#log.warn({ err: { message: error.message } }, 'group overage: Microsoft Graph lookup failed; login denied');
          return { refusal: { rule: 'allowed_groups', message: `Group membership could not be read from Microsoft Graph (${error.message}).` } };
        }
      }
    }
    return { identity: identityFromClaims(claims, this.settings.provider, groups) };
  }

  #refreshDue(session: Session, now = Date.now()): boolean {
    if (!session.refreshable) return false;
    const failedAt = this.#refreshFailedAt.get(session.id);
    if (failedAt !== undefined && now - failedAt < REFRESH_RETRY_MS) return false;
    if (session.accessExpiresAt !== undefined && session.accessExpiresAt - REFRESH_MARGIN_MS <= now) return true;
    return this.settings.cookieRefreshMs > 0 && now - session.refreshedAt >= this.settings.cookieRefreshMs;
  }

  /** Single-flight: however many requests arrive at once, one refresh per session reaches the provider. */
  #refreshOnce(session: Session): Promise<Session | undefined> {
    let pending = this.#refreshing.get(session.id);
    if (!pending) {
      // Another worker process holds the refresh lease: its result reaches us through the store's version.
      if (!this.sessions.claimRefresh(session, REFRESH_LEASE_MS)) return Promise.resolve(session);
      pending = this.#refresh(session).finally(() => this.#refreshing.delete(session.id));
      this.#refreshing.set(session.id, pending);
    }
    return pending;
  }

  async #refresh(session: Session): Promise<Session | undefined> {
    this.refreshes++;
    let tokens: TokenSet;
    try {
      const stored = this.sessions.tokens(session);
      if (!stored.refreshToken) return session;
      tokens = await refreshTokens(this.oidc, { ...stored, refreshToken: stored.refreshToken });
    } catch (error) {
      const code = (error as { error?: string }).error;
      if (code && FATAL_REFRESH_ERRORS.has(code)) {
        this.#log.info({ provider_error: providerErrorFields(error) }, 'refresh refused by the provider; session ended');
        this.sessions.delete(session);
        return undefined;
      }
      this.#log.warn({ provider_error: providerErrorFields(error) }, 'refresh failed; keeping the session and retrying later');
      this.#refreshFailedAt.set(session.id, Date.now());
      return session;
    }
    this.#refreshFailedAt.delete(session.id);
    const result = await this.establish(tokens, session.identity);
    if ('refusal' in result) {
      this.#log.info({ rule: result.refusal.rule }, 'refreshed identity refused; session ended');
      this.sessions.delete(session);
      return undefined;
    }
    return this.sessions.save(
      { ...session, identity: result.identity, accessExpiresAt: tokens.accessExpiresAt, refreshedAt: Date.now() },
      { idToken: tokens.idToken, accessToken: tokens.accessToken, refreshToken: tokens.refreshToken },
    );
  }
}
