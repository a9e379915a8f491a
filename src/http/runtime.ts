// Everything a running Gatehouse needs to answer requests, built from a validated Config:
// sites by name, certificates by SNI, upstream pools, trust rules and the logger.
// Building has no side effects beyond creating objects; runtime/gatehouse.ts provisions, starts, reloads and closes it.
import type { SiteAuth } from '../auth/site-auth.ts';
import type { FetchLike } from '../auth/oidc/client.ts';
import type { Config, Site } from '../config/model.ts';
import { openConfiguredStore } from '../session/open-store.ts';
import type { SessionStore } from '../session/store.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics, UpstreamState } from '../observability/metrics.ts';
import { TrustedProxies } from '../proxy/trusted-proxies.ts';
import { GroupHealth } from '../proxy/health-checks.ts';
import { UpstreamGroupPool } from '../proxy/upstream-pools.ts';
import { WebSocketTunnels } from '../proxy/websocket-tunnels.ts';
import { CertificateStore } from '../tls/certificate-store.ts';
import { NameIndex } from '../tls/name-index.ts';
import type { AnyRequest, AnyResponse, PlainHttpResponder } from '../base/types.ts';
import type { Readiness, StoreReadiness } from '../observability/health.ts';
import type { StoreHealth } from '../store/redis.ts';

export interface SiteRuntime {
  config: Site;
  groups: Map<string, UpstreamGroupPool>;
  /** Active health checks of the groups that have one (health_check), by group name. */
  health: Map<string, GroupHealth>;
  /** Login, sessions and policy of a site with [auth]; undefined = a public site. */
  auth?: SiteAuth;
}

export interface RuntimeOptions {
  /** fetch for requests to identity providers and Microsoft Graph (tests inject one that reaches an emulator). */
  fetch?: FetchLike;
  /** The session store to use instead of opening one (a reload keeps the running one when its settings are unchanged). */
  sessionStore?: SessionStore;
  /** The metrics to keep counting in (a reload keeps the running ones: counters never go back to 0). */
  metrics?: Metrics;
}

const SESSION_SWEEP_MS = 10 * 60_000;

export interface Runtime {
  config: Config;
  log: Logger;
  sites: NameIndex<SiteRuntime>;
  siteList: SiteRuntime[];
  defaultSite?: SiteRuntime;
  certificates: CertificateStore;
  trustedProxies: TrustedProxies;
  plainHttpResponders: PlainHttpResponder[];
  /** The server-side session store, open when some site has [auth]. */
  sessionStore?: SessionStore;
  /** This process's WebSockets by session, closed when their session ends. */
  tunnels: WebSocketTunnels;
  /** Prometheus metrics, kept when a [metrics] listener is configured. */
  metrics?: Metrics;
  /** Called when this configuration starts serving (at start, or swapped in by a reload; a failed reload's never):
   *  the metrics report its certificates and upstreams from then on. */
  serving(): void;
  /** The health of the shared ACME storage (Redis), once ACME is prepared with it (/ready). */
  acmeStorageHealth?: () => StoreHealth | undefined;
  /** Starts background work: OpenID discovery (with retries) and expired-session sweeps. */
  start(): void;
  /** True when every site's identity provider discovery has loaded (/ready). */
  ready(): boolean;
  /** Set once a graceful stop has begun: keep-alive clients are told to close. */
  stopping: boolean;
  close(): Promise<void>;
}

export async function buildRuntime(config: Config, log: Logger, options: RuntimeOptions = {}): Promise<Runtime> {
  // What only some configurations use is loaded when one does: the login code (openid-client, jose, the session
  // cache) for a site with [auth], prom-client for [metrics]. V8 never unloads a module, so a process that loaded
  // them keeps their memory for good.
  const hasAuth = config.sites.some((site) => site.auth);
  const SiteAuth = hasAuth ? (await import('../auth/site-auth.ts')).SiteAuth : undefined;
  const Metrics =
    config.metrics.listen && !options.metrics ? (await import('../observability/metrics.ts')).Metrics : undefined;
  // A store handed in is the caller's to close; one opened here is closed by close().
  const ownStore = !options.sessionStore;
  const sessionStore = hasAuth ? (options.sessionStore ?? (await openConfiguredStore(config))) : undefined;
  // Made once the certificates are (below); the sites' auth counts into it from their first request on.
  let metrics: Metrics | undefined;
  const siteList = config.sites.map((site): SiteRuntime => {
    const groups = new Map(Object.values(site.upstreams).map((group) => [group.name, new UpstreamGroupPool(group)]));
    const health = new Map<string, GroupHealth>();
    for (const group of Object.values(site.upstreams))
      if (group.healthCheck)
        health.set(
          group.name,
          new GroupHealth(groups.get(group.name)!, group.healthCheck, log.child({ site: site.name })),
        );
    return { config: site, groups, health, auth: siteAuth(site) };
  });
  function siteAuth(site: Site): SiteAuth | undefined {
    return site.auth && sessionStore && SiteAuth
      ? new SiteAuth(
          site.name,
          site.serverNames,
          site.auth,
          sessionStore,
          {
            cacheSize: config.session.cache_size,
            sharedStore: config.workers > 1,
            fetch: options.fetch,
            record: (event, outcome, count) => metrics?.authEvent(site.name, event, outcome, count),
          },
          log,
        )
      : undefined;
  }
  const auths = siteList.flatMap((site) => (site.auth ? [site.auth] : []));
  const tunnels = new WebSocketTunnels();
  // The end of a session closes its WebSockets (in every other worker too: runtime/cluster.ts reportListening).
  for (const auth of auths) auth.sessions.onEnded((key) => tunnels.end(key));
  let sweeper: NodeJS.Timeout | undefined;
  const sites = new NameIndex<SiteRuntime>();
  for (const site of siteList) for (const name of site.config.serverNames) sites.set(name, site);
  const defaultSite = config.https.default_site ? sites.get(config.https.default_site) : undefined;

  const certificates = new CertificateStore({ defaultSite: defaultSite?.config.name });
  // ACME sites get their certificate from prepareAcme() (stored or temporary self-signed) before the listeners start.
  for (const site of siteList)
    if (site.config.tls.source === 'files')
      certificates.setSite(site.config.name, site.config.serverNames, site.config.tls);
  if (config.metrics.listen) metrics = options.metrics ?? new Metrics!(certificates);

  return {
    config,
    log,
    sites,
    siteList,
    defaultSite,
    certificates,
    trustedProxies: new TrustedProxies(config.proxy.trusted_proxies),
    plainHttpResponders: [],
    sessionStore,
    tunnels,
    ...(metrics ? { metrics } : {}),
    serving() {
      if (!metrics) return;
      metrics.certificates = certificates;
      metrics.upstreams = () => upstreamStates(siteList);
    },
    start() {
      for (const auth of auths) auth.oidc.start();
      for (const site of siteList) for (const health of site.health.values()) health.start();
      if (sessionStore) {
        sweeper = setInterval(() => sessionStore.sweep(Date.now()), SESSION_SWEEP_MS);
        sweeper.unref();
      }
    },
    ready: () => auths.every((auth) => auth.oidc.ready),
    stopping: false,
    async close() {
      clearInterval(sweeper);
      for (const site of siteList) for (const health of site.health.values()) health.stop();
      for (const auth of auths) {
        auth.oidc.stop();
        auth.sessions.close();
      }
      await Promise.all(siteList.flatMap((site) => [...site.groups.values()].map((group) => group.close())));
      if (ownStore) await sessionStore?.close();
    },
  };
}

/** Every upstream server of the configuration and whether it takes requests now (gatehouse_upstream_server_up). */
function* upstreamStates(siteList: SiteRuntime[], now = Date.now()): Iterable<UpstreamState> {
  for (const site of siteList)
    for (const group of site.groups.values())
      for (const server of group.servers)
        yield { site: site.config.name, upstream: group.name, server: server.origin, up: server.downUntil <= now };
}

/** One process's own readiness (the [metrics] listener's /ready; the cluster's primary asks each worker). */
export function runtimeReadiness(runtime: Runtime): Readiness {
  const sites = runtime.siteList
    .filter((s) => s.auth)
    .map((s) => ({ site: s.config.name, provider_ready: s.auth!.oidc.ready }));
  const health = runtime.sessionStore?.health?.();
  const acme = runtime.acmeStorageHealth?.();
  return {
    ready: runtime.ready() && !runtime.stopping,
    sites,
    ...(health ? { store: storeReadiness(health) } : {}),
    ...(acme ? { acme_storage: storeReadiness(acme) } : {}),
  };
}

function storeReadiness(health: StoreHealth): StoreReadiness {
  return {
    backend: 'redis',
    state: health.state,
    since: new Date(health.since).toISOString(),
    ...(health.reason ? { reason: health.reason } : {}),
  };
}
