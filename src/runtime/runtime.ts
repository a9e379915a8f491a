// Everything a running Gatehouse needs to answer requests, built from a validated Config:
// sites by name, certificates by SNI, upstream pools, trust rules and the logger.
// Building has no side effects beyond creating objects; listeners are started separately (listeners.ts).
import type { Config, Site } from '../config/load.ts';
import type { Logger } from '../observability/logger.ts';
import { TrustedProxies } from '../proxy/trusted-proxies.ts';
import { UpstreamGroupPool } from '../proxy/upstream-pools.ts';
import { CertificateStore } from '../tls/certificate-store.ts';
import { NameIndex } from '../tls/name-index.ts';
import type { AnyRequest, AnyResponse } from '../http/types.ts';

export interface SiteRuntime {
  config: Site;
  groups: Map<string, UpstreamGroupPool>;
}

/** Answers plain-HTTP requests before the HTTPS redirect (ACME HTTP-01 challenges); returns true when it answered. */
export type PlainHttpResponder = (req: AnyRequest, res: AnyResponse, requestId: string) => boolean;

export interface Runtime {
  config: Config;
  log: Logger;
  sites: NameIndex<SiteRuntime>;
  siteList: SiteRuntime[];
  defaultSite?: SiteRuntime;
  certificates: CertificateStore;
  trustedProxies: TrustedProxies;
  plainHttpResponders: PlainHttpResponder[];
  /** Set once a graceful stop has begun: keep-alive clients are told to close. */
  stopping: boolean;
  close(): Promise<void>;
}

export function buildRuntime(config: Config, log: Logger, options: { ticketKeys?: Buffer } = {}): Runtime {
  const siteList = config.sites.map((site): SiteRuntime => ({
    config: site,
    groups: new Map(Object.values(site.upstreams).map((group) => [group.name, new UpstreamGroupPool(group)])),
  }));
  const sites = new NameIndex<SiteRuntime>();
  for (const site of siteList) for (const name of site.config.serverNames) sites.set(name, site);
  const defaultSite = config.https.default_site ? sites.get(config.https.default_site) : undefined;

  const certificates = new CertificateStore({ defaultSite: defaultSite?.config.name, ticketKeys: options.ticketKeys });
  // ACME sites get their certificate from prepareAcme() (stored or temporary self-signed) before the listeners start.
  for (const site of siteList) if (site.config.tls.source === 'files') certificates.setSite(site.config.name, site.config.serverNames, site.config.tls);

  return {
    config,
    log,
    sites,
    siteList,
    defaultSite,
    certificates,
    trustedProxies: new TrustedProxies(config.proxy.trusted_proxies),
    plainHttpResponders: [],
    stopping: false,
    async close() {
      await Promise.all(siteList.flatMap((site) => [...site.groups.values()].map((group) => group.close())));
    },
  };
}
