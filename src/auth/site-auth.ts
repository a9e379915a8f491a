// A site's authentication: its provider client, sessions, login-state cookies and policy, plus the two
// operations the request path needs: authenticate (cookie → session → refresh when due, once per session) and
// establish (tokens → identity → tenant/overage checks), used by the callback and by refresh alike.
import type { AuthSettings } from '../config/model.ts';
import { TrustedProxies } from '../proxy/trusted-proxies.ts';
import { PROVIDER_UNAVAILABLE, type Authenticated } from './authenticated.ts';
import type { Logger } from '../observability/logger.ts';
import type { AuthEvent } from '../observability/metrics.ts';
import { readCookie } from '../session/cookies.ts';
import { LoginStateCookies } from '../session/login-state.ts';
import {
  SiteSessions,
  type Identity,
  type RefreshLease,
  type Session,
  type SessionTokens,
} from '../session/sessions.ts';
import type { Answer } from '../base/types.ts';
import { StoreUnavailableError, type SessionStore } from '../session/store.ts';
import { verifyBearer } from './bearer.ts';
import { checkEntraTenant, hasGroupOverage } from './entra/issuer.ts';
import { graphGroups, GraphGroupsError } from './entra/graph-groups.ts';
import { identityFromClaims } from './identity.ts';
import { ownedAuthHeaders } from './identity-headers.ts';
import { OidcClient, PROVIDER_TIMEOUT_S, providerErrorFields, type FetchLike } from './oidc/client.ts';
import { refreshTokens, type TokenSet } from './oidc/callback.ts';
import { Policy, type Refusal } from './policy.ts';

/** Refresh once a quarter of the access token's lifetime is left, at most a minute ahead of its expiry, so upstreams
 *  never receive one that is about to lapse: a one-hour token 60 s ahead, a 30 s token 7.5 s ahead (a fixed minute
 *  refreshed tokens of a minute or less on every request). */
const REFRESH_MARGIN_SHARE = 0.25;
const REFRESH_MARGIN_MAX_MS = 60_000;
/** After a failed refresh (provider down), the next one is tried this long after, by any worker. */
const REFRESH_RETRY_MS = 10_000;
/** How long a request waits for its session's refresh. The refresh itself goes on until the provider answers (at most
 *  PROVIDER_TIMEOUT_S) and its result is kept: with rotating refresh tokens, dropping a late answer loses the session. */
const REFRESH_WAIT_MS = 10_000;
/** A refresh the shared store did not take is saved again this often (while [store] grace lasts). */
const SAVE_RETRY_MS = 1_000;
/** While another worker refreshes a session, the store is looked at this often for its result. */
const REFRESH_POLL_MS = 25;
/** How long one process may take to refresh a session before another may try (cluster workers): longer than the
 *  provider request may take, so two processes never spend one rotating refresh token (reuse revokes the grant). */
const REFRESH_LEASE_MS = (PROVIDER_TIMEOUT_S + 15) * 1000;
/** Errors after which the session is over and the user must log in again (RFC 6749 §5.2, OpenID Connect Core §3.1.2.6). */
const FATAL_REFRESH_ERRORS = new Set([
  'invalid_grant',
  'interaction_required',
  'login_required',
  'consent_required',
  'invalid_client',
]);
const WAIT_OVER = Symbol('wait over');

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
  /** Counts a login, refresh or logout by outcome (the metrics; nothing without a [metrics] listener). */
  readonly record: (event: AuthEvent, outcome: string, count?: number) => void;
  readonly #log: Logger;
  readonly #trustedIps: TrustedProxies;
  readonly #refreshing = new Map<string, Promise<Session | undefined>>();
  readonly #refreshFailedAt = new Map<string, number>();
  /** Whether requests send the access token upstream: then an expired one must never be used. */
  readonly #sendsAccessToken: boolean;

  constructor(
    siteName: string,
    siteNames: readonly string[],
    settings: AuthSettings,
    store: SessionStore,
    options: {
      cacheSize: number;
      sharedStore: boolean;
      fetch?: FetchLike;
      record?: (event: AuthEvent, outcome: string, count?: number) => void;
    },
    log: Logger,
  ) {
    this.settings = settings;
    this.record = options.record ?? (() => {});
    this.siteNames = siteNames;
    this.#log = log.child({ site: siteName });
    this.oidc = new OidcClient(settings, this.#log, options.fetch);
    this.#sendsAccessToken =
      settings.passAccessToken || (settings.passAuthorizationHeader && settings.authorizationToken === 'access_token');
    // Sites sharing a cookie_domain share their sessions: one namespace in the store for all of them, and each site's
    // cache is checked against the store, as between workers, so a sign-out on one site ends the session on all.
    const scope = settings.cookieDomain ? `cookie_domain:${settings.cookieDomain}` : siteName;
    this.sessions = new SiteSessions(scope, settings.secret, settings.cookieName, store, options.cacheSize, {
      shared: options.sharedStore || settings.cookieDomain !== undefined,
      inMemory: {
        accessToken: this.#sendsAccessToken,
        idToken: settings.passAuthorizationHeader && settings.authorizationToken === 'id_token',
      },
    });
    this.loginCookies = new LoginStateCookies(settings.secret, settings.cookieName);
    this.policy = new Policy(settings);
    this.ownedHeaders = ownedAuthHeaders(settings);
    this.#trustedIps = new TrustedProxies(settings.trustedIps);
  }

  /** trusted_ips: requests from these client addresses skip authentication (oauth2-proxy's trusted_ips). */
  trusts(clientAddress: string): boolean {
    return this.#trustedIps.has(clientAddress);
  }

  /** skip_auth_routes, matched on the normalized path only: a query string or "%23" cannot widen them. */
  skips(method: string | undefined, pathname: string): boolean {
    for (const r of this.settings.skipAuthRoutes)
      if ((r.method === undefined || r.method === method) && r.pattern.test(pathname) !== r.negate) return true;
    return false;
  }

  /** The session of this request (refreshed when due), a bearer identity, undefined when anonymous, or
   *  PROVIDER_UNAVAILABLE when its expired access token could not be renewed in time. At once (no promise) when the
   *  cached session answers and no refresh is due: most requests. */
  authenticate(headers: Record<string, string | string[] | undefined>): Answer<Authenticated> {
    const found = this.sessions.fromCookie(readCookie(headers.cookie, this.sessions.cookieName));
    return found instanceof Promise
      ? found.then((session) => this.#authenticated(session, headers))
      : this.#authenticated(found, headers);
  }

  #authenticated(
    session: Session | undefined,
    headers: Record<string, string | string[] | undefined>,
  ): Answer<Authenticated> {
    if (session) return this.#refreshDue(session) ? this.#refreshed(session) : session;
    if (this.settings.skipJwtBearerTokens && typeof headers.authorization === 'string')
      return verifyBearer(this, headers.authorization);
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
        if (!tokens.accessToken)
          return {
            refusal: {
              rule: 'allowed_groups',
              message: 'Group membership could not be read: no access token for Microsoft Graph.',
            },
          };
        try {
          groups = await graphGroups(
            this.oidc.fetch,
            String(metadata.msgraph_host ?? 'graph.microsoft.com'),
            tokens.accessToken,
          );
        } catch (error) {
          if (!(error instanceof GraphGroupsError)) throw error;
          this.#log.warn(
            { err: { message: error.message } },
            'group overage: Microsoft Graph lookup failed; login denied',
          );
          return {
            refusal: {
              rule: 'allowed_groups',
              message: `Group membership could not be read from Microsoft Graph (${error.message}).`,
            },
          };
        }
      }
    }
    return { identity: identityFromClaims(claims, this.settings.provider, groups) };
  }

  #refreshDue(session: Session, now = Date.now()): boolean {
    if (session.accessExpiresAt !== undefined) {
      const margin = Math.min(REFRESH_MARGIN_MAX_MS, (session.accessLifetimeMs ?? Infinity) * REFRESH_MARGIN_SHARE);
      if (session.accessExpiresAt - margin <= now) return true;
    }
    return this.settings.cookieRefreshMs > 0 && now - session.refreshedAt >= this.settings.cookieRefreshMs;
  }

  /** The site sends the access token upstream, and it has expired. */
  #expired(session: Session): boolean {
    return this.#sendsAccessToken && session.accessExpiresAt !== undefined && session.accessExpiresAt <= Date.now();
  }

  /**
   * A session whose refresh is due, with tokens fit to send upstream. The request waits (at most REFRESH_WAIT_MS) for
   * the refresh; when it does not complete, a still valid access token serves, an expired one never does.
   */
  async #refreshed(session: Session): Promise<Authenticated> {
    if (!session.refreshable) {
      if (!this.#expired(session)) return session;
      // Nothing can renew its token: the session is over, a new login gets a new one.
      this.#log.info('access token expired and no refresh token; session ended');
      await this.sessions.delete(session);
      return undefined;
    }
    const failedAt = this.#refreshFailedAt.get(session.id);
    let result: Session | undefined | typeof WAIT_OVER = session;
    if (failedAt === undefined || Date.now() - failedAt >= REFRESH_RETRY_MS) {
      let timer: NodeJS.Timeout | undefined;
      const waitOver = new Promise<typeof WAIT_OVER>((resolve) => {
        timer = setTimeout(resolve, REFRESH_WAIT_MS, WAIT_OVER);
      });
      try {
        result = await Promise.race([this.#refreshOnce(session), waitOver]).finally(() => clearTimeout(timer));
      } catch (error) {
        // The shared store cannot be reached: a still valid token serves, an expired one never does (503).
        if (!(error instanceof StoreUnavailableError) || this.#expired(session)) throw error;
        result = session;
      }
      if (result === WAIT_OVER) result = session;
    }
    return result && this.#expired(result) ? PROVIDER_UNAVAILABLE : result;
  }

  /** Single-flight: however many requests arrive at once, one refresh per session reaches the provider, and it runs
   *  to its end whether or not they still wait for it. With workers > 1 or a shared store the process holding the
   *  store's lease refreshes, the others watch the store for its result. */
  #refreshOnce(session: Session): Promise<Session | undefined> {
    let pending = this.#refreshing.get(session.id);
    if (!pending) {
      pending = this.#claimOrWatch(session).finally(() => this.#refreshing.delete(session.id));
      this.#refreshing.set(session.id, pending);
    }
    return pending;
  }

  async #claimOrWatch(session: Session): Promise<Session | undefined> {
    const lease = await this.sessions.claimRefresh(session, REFRESH_LEASE_MS);
    return lease ? this.#refreshHolding(session, lease) : this.#watch(session);
  }

  /** With the lease: unless another process saved the session since it was read here (its refresh, seen late by
   *  this cache), refresh it. */
  async #refreshHolding(session: Session, lease: RefreshLease): Promise<Session | undefined> {
    try {
      const current = lease.owner === 'local' ? session : await this.sessions.current(session);
      if (current !== session) return current;
      return await this.#refresh(session, lease);
    } finally {
      lease.stop();
    }
  }

  /** Another process holds the refresh lease: its result is its save (a new version in the store) or the session's
   *  end. Should the lease end without either (that process failed, stopped or died), this process takes it over. */
  async #watch(session: Session): Promise<Session | undefined> {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, REFRESH_POLL_MS).unref());
      const current = await this.sessions.current(session);
      if (current !== session) return current;
      const lease = await this.sessions.claimRefresh(session, REFRESH_LEASE_MS);
      if (lease) return this.#refreshHolding(session, lease);
    }
  }

  async #refresh(session: Session, lease: RefreshLease): Promise<Session | undefined> {
    const stored = await this.sessions.tokens(session);
    if (!stored.refreshToken) return session;
    this.refreshes++;
    this.#log.debug('refreshing the session at the provider');
    let tokens: TokenSet;
    try {
      tokens = await refreshTokens(this.oidc, { ...stored, refreshToken: stored.refreshToken });
    } catch (error) {
      const code = (error as { error?: string }).error;
      if (code && FATAL_REFRESH_ERRORS.has(code)) {
        // Another process may have refreshed meanwhile with a rotated refresh token (ours is then spent): its save
        // stands, the session is not over.
        const current = await this.sessions.current(session);
        if (current && current !== session) {
          this.#log.info({ provider_error: providerErrorFields(error) }, 'refresh refused; another process refreshed');
          return current;
        }
        this.#log.info(
          { provider_error: providerErrorFields(error) },
          'refresh refused by the provider; session ended',
        );
        await this.sessions.delete(session);
        this.record('refresh', 'session_ended');
        return undefined;
      }
      this.record('refresh', 'failed');
      this.#log.warn(
        { provider_error: providerErrorFields(error), retry_ms: REFRESH_RETRY_MS },
        'refresh failed; keeping the session and retrying later',
      );
      this.#refreshFailedAt.set(session.id, Date.now());
      await this.sessions.deferRefresh(session, REFRESH_RETRY_MS);
      return session;
    }
    this.#refreshFailedAt.delete(session.id);
    const result = await this.establish(tokens, session.identity);
    if ('refusal' in result) {
      this.#log.info({ rule: result.refusal.rule }, 'refreshed identity refused; session ended');
      await this.sessions.delete(session);
      this.record('refresh', 'session_ended');
      return undefined;
    }
    this.record('refresh', 'success');
    const refreshed = {
      ...session,
      identity: result.identity,
      accessExpiresAt: tokens.accessExpiresAt,
      accessLifetimeMs: tokens.accessLifetimeMs,
      refreshedAt: Date.now(),
    };
    const newTokens = { idToken: tokens.idToken, accessToken: tokens.accessToken, refreshToken: tokens.refreshToken };
    let saved: Session | undefined;
    try {
      saved = await this.sessions.update(refreshed, newTokens, lease);
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      // The provider may have rotated the refresh token: dropping the answer would lose the session. This process
      // serves the new tokens and saves them once the store answers again.
      this.#log.warn('refreshed tokens not saved: the session store is unreachable; saving them when it is back');
      void this.#saveLater(refreshed, newTokens);
      return this.sessions.remember(refreshed, newTokens);
    }
    if (saved) return saved;
    // Not saved: the session ended meanwhile, or (shared store) the lease was lost and another process saved.
    const current = await this.sessions.current(session);
    if (current) this.#log.info('refresh completed after another process refreshed; its tokens are dropped');
    else this.#log.info('refresh completed after the session ended; its tokens are dropped');
    return current;
  }

  /** Retries the save of a refresh the store did not take, every second for [store] grace: with the lease taken again
   *  and only while nobody saved the session since (then that save stands). */
  async #saveLater(refreshed: Session, tokens: SessionTokens): Promise<void> {
    const deadline = Date.now() + this.sessions.graceMs;
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, SAVE_RETRY_MS).unref());
      try {
        const lease = await this.sessions.claimRefresh(refreshed, REFRESH_LEASE_MS);
        if (!lease) continue;
        try {
          // A save that timed out may still have reached Redis (it ran once Redis answered again): then it is there.
          const landed = async () => {
            const stored = await this.sessions.tokens(refreshed);
            return stored.refreshToken === tokens.refreshToken && stored.accessToken === tokens.accessToken;
          };
          const saved = (await this.sessions.update(refreshed, tokens, lease)) !== undefined || (await landed());
          this.#log.info(
            { saved },
            saved ? 'refreshed tokens saved' : 'refreshed tokens dropped: the session changed or ended meanwhile',
          );
          if (!saved) await this.sessions.current(refreshed);
          return;
        } finally {
          lease.stop();
        }
      } catch (error) {
        if (!(error instanceof StoreUnavailableError)) throw error;
      }
    }
    this.#log.warn('refreshed tokens not saved: the session store stayed unreachable');
  }
}
