// The one composition root: createGatehouse(config) → provision() → start() → stop(), as `serve`, `demo`, the tests
// and the bench start Gatehouse (Caddy's Provision/Validate/Cleanup, fastify's ready/close).
//   provision: sites, certificates (stored ACME ones too), upstream pools, auth, session store — nothing listens yet;
//   start:     listeners open, background work (OpenID discovery, session sweeps, ACME renewals) begins;
//   reload:    the new configuration is provisioned beside the running one and swapped in at once; the listeners stay
//              open, and what began on the old one (requests, WebSockets) keeps it until it ends, then it is closed;
//   stop:      listeners close, connections drain within the grace period, everything is closed.
import { prepareAcme, startAcme } from './acme.ts';
import type { AcmeManager, AcmeOptions } from '../acme/manager.ts';
import type { FetchLike } from '../auth/oidc/client.ts';
import type { Config } from '../config/model.ts';
import { createPlainHttpHandler } from '../http/plain-http-handler.ts';
import { createRequestHandler, createUpgradeHandler } from '../http/pipeline.ts';
import type { Logger } from '../observability/logger.ts';
import { openConfiguredStore, sameStore } from '../session/open-store.ts';
import type { SessionStore } from '../session/store.ts';
import type { RedisPair } from '../store/redis.ts';
import { formatAddress, Listeners, type Handlers, type Listening } from '../http/listeners.ts';
import { buildRuntime, type Runtime } from '../http/runtime.ts';

export interface GatehouseOptions {
  log: Logger;
  /** fetch for requests to identity providers (tests inject one that reaches an emulator). */
  fetch?: FetchLike;
  acme?: AcmeOptions;
  /** Whether this process orders and renews ACME certificates (one process of a cluster does). */
  acmeScheduler?: boolean;
}

/** How often a reload looks whether the new configuration's identity providers are ready before it swaps. */
const READY_POLL_MS = 50;

/** The Redis connections of [store] backend = "redis": one pair per process and [store] settings, lent to both the
 *  session store and the ACME store of every configuration that uses them. */
interface SharedRedis {
  key: string;
  pair: RedisPair;
  /** Configurations (generations) using it: closed when the last one closes. */
  users: number;
}

/** One provisioned configuration: its runtime, ACME manager, handlers, and what is still running on it. */
interface Generation extends Handlers {
  acme?: AcmeManager;
  redis?: SharedRedis;
  /** Requests and WebSockets that began on it and have not ended. */
  active: number;
  retired: boolean;
  closed?: Promise<void>;
}

export class Gatehouse implements Listening {
  readonly log: Logger;
  readonly #options: GatehouseOptions;
  #config: Config;
  #current?: Generation;
  readonly #retired = new Set<Generation>();
  #listeners?: Listeners;
  #reloading: Promise<void> = Promise.resolve();
  #stopped?: Promise<void>;
  readonly #onRuntime: Array<(runtime: Runtime) => void> = [];
  /** How many configurations use each session store: a reload may keep the running one. */
  readonly #storeUsers = new Map<SessionStore, number>();
  /** The open Redis connections by [store] settings: a reload with the same [store] keeps them. */
  readonly #redis = new Map<string, SharedRedis>();

  constructor(config: Config, options: GatehouseOptions) {
    this.#config = config;
    this.#options = options;
    this.log = options.log;
  }

  /** The runtime of the configuration being served. */
  get runtime(): Runtime {
    return this.#now().runtime;
  }
  get config(): Config {
    return this.#config;
  }
  get acme(): AcmeManager | undefined {
    return this.#current?.acme;
  }
  get https() {
    return this.#listeners?.https ?? [];
  }
  get http() {
    return this.#listeners?.http ?? [];
  }
  get metrics() {
    return this.#listeners?.metrics;
  }
  connections(): number {
    return this.#listeners?.connections() ?? 0;
  }

  /** Called with the runtime that starts serving: at start, and at every reload. */
  onRuntime(listener: (runtime: Runtime) => void): void {
    this.#onRuntime.push(listener);
  }

  /** Builds everything the configuration needs without listening. Idempotent. */
  async provision(): Promise<void> {
    this.#current ??= await this.#provision(this.#config);
  }

  /** Opens the listeners and starts background work; rejects with a ListenError (and closes what it made) when an address cannot be bound. */
  async start(): Promise<this> {
    await this.provision();
    const current = this.#now();
    this.#listeners = new Listeners(() => this.#now());
    try {
      await this.#listeners.apply(this.#config);
    } catch (error) {
      await this.#close(current);
      throw error;
    }
    this.#serve(current);
    return this;
  }

  /**
   * Serves `config` from now on, without closing a listener that it keeps or cutting a connection. Rejects, and the
   * running configuration goes on serving, when the new one cannot be provisioned or a new address cannot be bound.
   * Reloads run one after the other.
   */
  reload(config: Config): Promise<void> {
    const run = this.#reloading.then(() => this.#reload(config));
    this.#reloading = run.catch(() => {});
    return run;
  }

  async #reload(config: Config): Promise<void> {
    if (this.#stopped || !this.#listeners) throw new Error('Gatehouse is not running');
    const old = this.#now();
    const next = await this.#provision(config, old);
    try {
      next.runtime.start();
      await this.#whenReady(next.runtime, config.lifecycle.start_timeout);
      if (this.#stopped) throw new Error('reload abandoned: Gatehouse is stopping');
      await this.#listeners.apply(config);
      if (this.#stopped) throw new Error('reload abandoned: Gatehouse is stopping');
    } catch (error) {
      await this.#close(next);
      throw error;
    }
    // The swap: from here on every handshake, request and upgrade gets the new configuration.
    this.#config = config;
    this.#current = next;
    this.#listeners.useCertificates();
    this.#retire(old);
    this.#serve(next, false);
  }

  #addresses() {
    const listeners = this.#listeners!;
    return {
      https: listeners.https.map(formatAddress),
      http: listeners.http.map(formatAddress),
      ...(listeners.metrics ? { metrics: formatAddress(listeners.metrics) } : {}),
    };
  }

  /** Stops accepting, drains within graceMs (default: [lifecycle] shutdown_grace), then closes every configuration. */
  stop(graceMs = this.#config.lifecycle.shutdown_grace): Promise<void> {
    this.#stopped ??= (async () => {
      for (const generation of [this.#current, ...this.#retired]) if (generation) generation.runtime.stopping = true;
      await this.#listeners?.stop(graceMs);
      const all = [...this.#retired, ...(this.#current ? [this.#current] : [])];
      await Promise.all(all.map((generation) => this.#close(generation)));
      this.log.info('stopped');
    })();
    return this.#stopped;
  }

  /** Closes the WebSockets of an ended session in every configuration still running (an old one keeps its tunnels). */
  endTunnels(key: string): void {
    for (const generation of [this.#current, ...this.#retired]) generation?.runtime.tunnels.end(key);
  }

  #now(): Generation {
    if (!this.#current) throw new Error('Gatehouse is not provisioned');
    return this.#current;
  }

  async #provision(config: Config, previous?: Generation): Promise<Generation> {
    const prior = previous?.runtime;
    const needsStore = config.sites.some((site) => site.auth);
    // Sessions outlive a reload: the running store is kept when its settings are unchanged (a memory store would
    // otherwise sign everybody out).
    const keep = prior?.sessionStore && sameStore(prior.config, config);
    const redis = await this.#acquireRedis(config);
    const sessionStore = needsStore ? (keep ? prior.sessionStore : await this.#openStore(config, redis)) : undefined;
    if (sessionStore) this.#storeUsers.set(sessionStore, (this.#storeUsers.get(sessionStore) ?? 0) + 1);
    let runtime;
    try {
      runtime = await buildRuntime(config, this.log, {
        fetch: this.#options.fetch,
        sessionStore,
        metrics: prior?.metrics,
      });
    } catch (error) {
      this.#releaseStore(sessionStore);
      void this.#releaseRedis(redis);
      throw error;
    }
    // A session that ends on the new configuration also closes the WebSockets still open on an old one.
    for (const site of runtime.siteList)
      site.auth?.sessions.onEnded((key) => {
        for (const old of this.#retired) old.runtime.tunnels.end(key);
      });
    let acme;
    try {
      acme = await prepareAcme(runtime, { ...this.#options.acme, ...(redis ? { redis: redis.pair.borrow() } : {}) });
    } catch (error) {
      await runtime.close();
      this.#releaseStore(sessionStore);
      void this.#releaseRedis(redis);
      throw error;
    }
    const onRequest = createRequestHandler(runtime);
    const onUpgrade = createUpgradeHandler(runtime);
    const onPlain = createPlainHttpHandler(runtime, () => this.#listeners!.httpsPort(config));
    const generation: Generation = {
      runtime,
      acme,
      ...(redis ? { redis } : {}),
      active: 0,
      retired: false,
      request: (req, res) => {
        this.#hold(generation, res);
        onRequest(req, res);
      },
      upgrade: (req, socket, head) => {
        this.#hold(generation, socket);
        onUpgrade(req, socket, head);
      },
      plain: (req, res) => {
        this.#hold(generation, res);
        onPlain(req, res);
      },
    };
    return generation;
  }

  #serve(generation: Generation, first = true): void {
    const { runtime, acme } = generation;
    runtime.serving();
    if (first) runtime.start();
    if (acme) startAcme(acme, this, this.#options.acmeScheduler ?? true);
    runtime.log.info(
      { ...this.#addresses(), sites: runtime.siteList.map((s) => s.config.name) },
      first ? 'listening' : 'reloaded',
    );
    for (const listener of this.#onRuntime) listener(runtime);
  }

  /** Counts what runs on a configuration until its response or socket closes. */
  #hold(generation: Generation, done: { once(event: 'close', listener: () => void): unknown }): void {
    generation.active++;
    done.once('close', () => {
      generation.active--;
      if (generation.retired && generation.active === 0) void this.#close(generation);
    });
  }

  #retire(generation: Generation): void {
    generation.retired = true;
    this.#retired.add(generation);
    // Its ACME manager stops ordering now (the new one has taken over the certificates); an order in flight is abandoned.
    void generation.acme?.stop();
    if (generation.active === 0) void this.#close(generation);
  }

  #close(generation: Generation): Promise<void> {
    generation.closed ??= (async () => {
      await generation.acme?.stop();
      await generation.runtime.close();
      this.#releaseStore(generation.runtime.sessionStore);
      await this.#releaseRedis(generation.redis);
      this.#retired.delete(generation);
    })();
    return generation.closed;
  }

  /**
   * The process's Redis connections for config's [store] (backend = "redis" and a site with [auth] or ACME), opened
   * once and kept by a reload that leaves [store] as it is. A reload that changes [store] (another URL, a rotated
   * password) connects anew for the new configuration; the old connections close with the last configuration using
   * them.
   */
  async #acquireRedis(config: Config): Promise<SharedRedis | undefined> {
    if (config.store.backend !== 'redis') return undefined;
    if (!config.sites.some((site) => site.auth || site.tls.source === 'acme')) return undefined;
    // Loaded first (only a configuration that uses Redis loads its client): no await between looking up and adding.
    const { connectRedis } = await import('../store/redis.ts');
    const key = JSON.stringify(config.store);
    let shared = this.#redis.get(key);
    if (!shared) {
      shared = { key, pair: connectRedis(config.store, `gatehouse:${process.pid}`), users: 0 };
      this.#redis.set(key, shared);
    }
    shared.users++;
    return shared;
  }

  async #releaseRedis(shared: SharedRedis | undefined): Promise<void> {
    if (!shared || --shared.users > 0) return;
    this.#redis.delete(shared.key);
    await shared.pair.close();
  }

  /** Opens the configured store; a shared one's changes of health are logged (what /ready reports). */
  async #openStore(config: Config, redis: SharedRedis | undefined): Promise<SessionStore> {
    const store = await openConfiguredStore(config, redis?.pair.borrow());
    store.onHealth?.((health) => {
      if (health.state === 'up') this.log.info({ store: 'redis' }, 'session store reachable');
      else
        this.log.warn(
          { store: 'redis', reason: health.reason },
          'session store unreachable: cached sessions serve for [store] grace',
        );
    });
    return store;
  }

  #releaseStore(store: SessionStore | undefined): void {
    if (!store) return;
    const users = (this.#storeUsers.get(store) ?? 1) - 1;
    if (users > 0) {
      this.#storeUsers.set(store, users);
      return;
    }
    this.#storeUsers.delete(store);
    void store.close();
  }

  /** Waits until the runtime's identity providers are ready, at most `timeoutMs`: a swap before would answer 503 to logins. */
  async #whenReady(runtime: Runtime, timeoutMs: number): Promise<void> {
    for (
      const deadline = Date.now() + timeoutMs;
      !runtime.ready();
      await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS))
    ) {
      if (Date.now() >= deadline) {
        this.log.warn(
          { timeout_ms: timeoutMs },
          'reload: an identity provider is not ready yet; serving the new configuration anyway',
        );
        return;
      }
    }
  }
}

export function createGatehouse(config: Config, options: GatehouseOptions): Gatehouse {
  return new Gatehouse(config, options);
}
