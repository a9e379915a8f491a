// Keeps every `tls.acme = true` site served with a valid certificate, after CertMagic:
// at start the stored certificate (or a temporary self-signed one) is installed; a scheduler then looks at each
// certificate every check_interval (sooner when something is due), renews when less than renew_ratio of its lifetime
// remains (or inside the CA's ARI window), retries failures with exponential backoff for as long as it takes, and
// installs the new certificate for new handshakes at once. Open connections keep the certificate they started with.
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Config, Site } from '../config/model.ts';
import type { Logger } from '../observability/logger.ts';
import type { RedisConnections } from '../store/redis.ts';
import type { CertificateStore, KeyPair } from '../tls/certificate-store.ts';
import { createSelfSigned } from '../tls/self-signed.ts';
import {
  createAcmeClient,
  DEFAULT_POLL,
  fetchDirectory,
  trustForAcme,
  type Directory,
  type PollOptions,
} from './account.ts';
import { ariCertId } from './ari.ts';
import { createChallengeResponder, waitUntilAnswered, type ProbeTarget } from './challenges.ts';
import { orderCertificate, requireProfile } from './issuer.ts';
import { openAcmeStore } from './open-store.ts';
import { nextRenewal, type RenewalTime } from './renewal-time.ts';
import { describe, fitFor, type CertInfo, type CertMeta } from './storage.ts';
import type { AcmeStore } from './store.ts';
import type acme from 'acme-client';

export interface AcmeOptions {
  poll?: PollOptions;
  now?: () => number;
  /** How long an order waits for its HTTP-01 token to be answered on this host before asking the CA anyway. */
  challengeWaitMs?: number;
  /** The store to use instead of the one [store] backend names. */
  store?: AcmeStore;
  /** The process's Redis connections, lent to the Redis store [store] names (else it opens its own). */
  redis?: RedisConnections;
}

/** Time for the process holding [acme] http_port (another one sharing the storage) to come up and answer. */
const CHALLENGE_WAIT_MS = 60_000;
/** How long start-up waits for a shared store (Redis) to answer before serving temporary certificates. */
const STORE_WAIT_MS = 5_000;

interface SiteState {
  site: Site;
  /** What is being served; undefined while the temporary self-signed certificate is. */
  served?: { info: CertInfo; pair: KeyPair };
  renewAt?: RenewalTime;
  failures: number;
  nextAttemptAt: number;
  lastError?: string;
  corrupt?: string;
  /** A certificate obtained while the store could not take it: served from memory, stored once the store is back. */
  unsaved?: { pair: KeyPair; meta: CertMeta };
  /** The last attempt found the store unreachable: retried as soon as it is back. */
  postponed?: boolean;
}

export type AcmeEvents = {
  installed: [domain: string, info: CertInfo, origin: 'storage' | 'order'];
  failed: [domain: string, message: string];
};

export class AcmeManager {
  readonly events = new EventEmitter<AcmeEvents>();
  readonly store: AcmeStore;
  private readonly states = new Map<string, SiteState>();
  private readonly config: Config;
  private readonly certificates: CertificateStore;
  private readonly log: Logger;
  private readonly poll: PollOptions;
  private readonly now: () => number;
  private directory?: { value: Promise<Directory>; until: number };
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  private readonly stopping = new AbortController();
  private readonly challengeWaitMs: number;
  /** This process's plain-HTTP listeners (its responder answers there), once they listen. */
  private httpListeners: AddressInfo[] = [];
  /** An order succeeded although nothing answered on this host: [acme] http_port reaches us through a forward,
   *  so later orders do not wait for it. */
  private forwarded = false;
  private readonly unwatch: Array<() => void> = [];
  /** The store could not be read at the last look (logged once per outage). */
  private storeDown = false;

  constructor(config: Config, certificates: CertificateStore, log: Logger, options: AcmeOptions = {}) {
    this.config = config;
    this.certificates = certificates;
    this.log = log.child({ component: 'acme' });
    this.poll = options.poll ?? DEFAULT_POLL;
    this.now = options.now ?? Date.now;
    this.challengeWaitMs = options.challengeWaitMs ?? CHALLENGE_WAIT_MS;
    if (config.acme.caRootPem) trustForAcme(config.acme.caRootPem);
    this.store = options.store ?? openAcmeStore(config, options.redis);
    for (const site of config.sites)
      if (site.tls.source === 'acme') this.states.set(site.name, { site, failures: 0, nextAttemptAt: 0 });
  }

  responder() {
    return createChallengeResponder(this.store.challenges);
  }

  /** Where this process answers HTTP-01 (its [http] listeners), once they listen. */
  setHttpListeners(addresses: AddressInfo[]): void {
    this.httpListeners = addresses;
  }

  /** Before listening: every ACME site gets its stored certificate, or a temporary self-signed one so HTTPS answers. */
  async prepare(): Promise<void> {
    if (!(await this.store.whenReady(STORE_WAIT_MS)))
      this.log.warn(
        { store: this.store.where, wait_s: STORE_WAIT_MS / 1000 },
        'ACME storage not reachable yet: certificates are installed from it once it answers',
      );
    this.sweepChallenges();
    for (const state of this.states.values()) {
      await this.adoptStored(state);
      if (state.served) continue;
      this.certificates.setSite(
        state.site.name,
        state.site.serverNames,
        await createSelfSigned(state.site.serverNames, 7),
      );
      this.log.info(
        { domain: state.site.name },
        'no valid stored certificate yet: serving a temporary self-signed one while the order runs',
      );
    }
  }

  /** Starts the scheduler (unless another process of the cluster runs it), and watches each domain's folder so a
   *  certificate stored by another process is served at once. */
  start(options: { scheduler: boolean } = { scheduler: true }): void {
    this.store.onHealth((health) => {
      if (this.stopped) return;
      if (health.state === 'degraded') {
        this.log.warn(
          { store: this.store.where, reason: health.reason },
          'ACME storage unreachable: certificates keep being served from memory; renewals wait until it is back',
        );
        return;
      }
      this.log.info({ store: this.store.where }, 'ACME storage reachable again');
      // Postponed renewals and what was stored meanwhile: looked at now, not at the next check_interval.
      if (options.scheduler && !this.running) {
        for (const state of this.states.values())
          if (state.postponed) state.nextAttemptAt = Math.min(state.nextAttemptAt, this.now());
        this.schedule(0);
      }
    });
    for (const state of this.states.values()) {
      try {
        this.unwatch.push(this.store.watch(state.site.name, () => void this.storageChanged(state, options.scheduler)));
      } catch (error) {
        this.log.warn(
          { domain: state.site.name, err: (error as Error).message },
          'cannot watch the storage folder; changes are seen at the next check',
        );
      }
    }
    if (!options.scheduler) {
      // The scheduler's process stores what it orders; should a watch miss it, the next look does not.
      this.timer = setInterval(() => {
        for (const state of this.states.values()) void this.adoptStored(state);
      }, this.config.acme.checkIntervalMs).unref();
      return;
    }
    this.log.info({ sites: [...this.states.keys()] }, 'renewal scheduler started');
    this.schedule(0);
  }

  private async storageChanged(state: SiteState, scheduler: boolean): Promise<void> {
    if (this.stopped) return;
    const before = state.corrupt;
    await this.adoptStored(state);
    // A stored pair damaged while we run is replaced now, not at the next check_interval.
    if (scheduler && state.corrupt !== undefined && state.corrupt !== before && !this.running) this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    clearTimeout(this.timer);
    for (const unwatch of this.unwatch) unwatch();
    await this.running;
    await this.store.close();
  }

  /** `gatehouse certs renew <domain>`: order now, whatever the renewal time says. Throws with the CA's error text. */
  async renewNow(domain: string): Promise<CertInfo> {
    const state = this.states.get(domain);
    if (!state)
      throw new Error(
        `${domain} is not a site with tls.acme = true (sites: ${[...this.states.keys()].join(', ') || 'none'})`,
      );
    await this.store.whenReady(STORE_WAIT_MS);
    await this.adoptStored(state);
    const result = await this.order(state, true);
    if (result === 'locked')
      throw new Error(`another Gatehouse process is ordering ${domain} right now (lock in ${this.store.where})`);
    if (result !== 'ok') throw new Error(state.lastError);
    return state.served!.info;
  }

  /** One pass over all sites; then the next pass is timed for whatever comes due first. */
  async checkAll(): Promise<void> {
    this.sweepChallenges();
    // Sites side by side: a slow order (a CA asking to wait) must not hold up another site's renewal.
    await Promise.all(
      [...this.states.values()].map(async (state) => {
        if (this.stopped) return;
        if (state.unsaved) await this.storeUnsaved(state);
        await this.adoptStored(state);
        const now = this.now();
        const renewAt = state.served ? await this.renewalTime(state) : undefined;
        const due =
          !state.served ||
          state.corrupt !== undefined ||
          !fitFor(state.served.info, state.site.serverNames, now) ||
          now >= renewAt!.getTime();
        if (due && now >= state.nextAttemptAt) await this.order(state, false);
      }),
    );
  }

  private sweepChallenges(): void {
    const removed = this.store.sweep();
    if (removed.length > 0) this.log.info({ removed }, 'removed challenge tokens that stopped orders left behind');
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.checkAll()
        .catch((error: unknown) => this.log.error({ err: error }, 'certificate check failed'))
        .finally(() => {
          this.running = undefined;
          const next = this.nextDelay();
          this.log.debug({ next_check_ms: next }, 'certificates checked');
          this.schedule(next);
        });
    }, delayMs);
    this.timer.unref();
  }

  private nextDelay(): number {
    let delay = this.config.acme.checkIntervalMs;
    for (const state of this.states.values()) {
      const due = Math.max(state.renewAt?.at.getTime() ?? 0, state.nextAttemptAt);
      delay = Math.min(delay, due - this.now());
    }
    return Math.max(delay, 50);
  }

  /** Installs the stored certificate when it is fit, another certificate and not older than the served one (another
   *  process or the CLI renewed it). A stored pair that does not load is remembered in `corrupt`: the next check orders. */
  private async adoptStored(state: SiteState): Promise<void> {
    const domain = state.site.name;
    let stored;
    try {
      stored = await this.store.read(domain);
      this.storeDown = false;
    } catch (error) {
      if (!this.storeDown)
        this.log.warn(
          { domain, store: this.store.where, err: (error as Error).message },
          'cannot read the ACME storage: serving the certificate in memory',
        );
      this.storeDown = true;
      return;
    }
    const problem = stored.state === 'corrupt' ? stored.reason : stored.state === 'ok' ? stored.problem : undefined;
    if (problem !== undefined && state.corrupt !== problem) {
      const serving = state.served
        ? 'keeping the one in service'
        : stored.state === 'ok' && fitFor(stored.info, state.site.serverNames, this.now())
          ? `serving the previous one (serial ${stored.info.serial})`
          : 'serving a temporary one';
      this.log.error({ domain, reason: problem }, `stored certificate is unusable; ${serving} and ordering a new one`);
    }
    state.corrupt = problem;
    if (stored.state !== 'ok' || !fitFor(stored.info, state.site.serverNames, this.now())) return;
    // Not older is enough: two certificates issued within the same second share their notAfter (second precision),
    // and the stored one is the latest written (a `certs renew` right after an order, another process).
    if (
      state.served &&
      (stored.info.serial === state.served.info.serial || stored.info.notAfter < state.served.info.notAfter)
    )
      return;
    if (stored.recovered)
      this.log.warn({ domain, reason: stored.recovered }, 'stored certificate recovered from an interrupted write');
    this.install(state, stored.pair, stored.info, 'storage');
  }

  private install(state: SiteState, pair: KeyPair, info: CertInfo, origin: 'storage' | 'order'): void {
    this.certificates.setSite(state.site.name, state.site.serverNames, pair);
    state.served = { info, pair };
    state.renewAt = undefined;
    this.log.info(
      {
        domain: state.site.name,
        issuer: info.issuer,
        serial: info.serial,
        not_after: info.notAfter.toISOString(),
        origin,
      },
      'certificate installed for new connections',
    );
    this.events.emit('installed', state.site.name, info, origin);
  }

  private async renewalTime(state: SiteState): Promise<Date> {
    if (state.renewAt && state.renewAt.until > this.now()) return state.renewAt.at;
    const directory = await this.getDirectory().catch(() => ({}) as Directory);
    state.renewAt = await nextRenewal(state.served!, this.config.acme.renewRatio, directory, this.now(), (error) =>
      this.log.warn({ domain: state.site.name, err: error.message }, 'ARI lookup failed; renewing by ratio'),
    );
    return state.renewAt.at;
  }

  private getDirectory(): Promise<Directory> {
    if (!this.directory || this.directory.until < this.now()) {
      const value = fetchDirectory(this.config.acme.directoryUrl);
      this.directory = { value, until: this.now() + 86_400_000 };
      value.catch(() => {
        this.directory = undefined;
      });
    }
    return this.directory.value;
  }

  private getClient(): Promise<acme.Client> {
    return createAcmeClient(
      this.config.acme,
      this.poll,
      (retired) =>
        this.log.warn(
          { retired_key: retired, store: this.store.where },
          'the CA deactivated the ACME account: registering a new one with a new account key',
        ),
      this.store.accountKeys,
    );
  }

  private async order(
    state: SiteState,
    forced: boolean,
  ): Promise<'ok' | 'locked' | 'failed' | 'adopted' | 'postponed'> {
    const domain = state.site.name;
    let release;
    try {
      release = await this.store.lock(domain);
    } catch (error) {
      this.postpone(state, error);
      return 'postponed';
    }
    state.postponed = false;
    if (!release) {
      this.log.info({ domain }, 'another Gatehouse process is ordering this certificate; will use its result');
      state.nextAttemptAt = this.now() + Math.min(this.config.acme.retryMinMs, 30_000);
      return 'locked';
    }
    const previous = state.served?.info.serial;
    try {
      await this.adoptStored(state); // it may have finished an order while we waited for the lock
      if (!forced && state.served && state.served.info.serial !== previous) return 'adopted';
      const started = performance.now();
      this.log.info(
        { domain, names: state.site.serverNames, directory: this.config.acme.directoryUrl, forced },
        'ordering certificate',
      );
      // The directory first: an unreachable CA gives a clear error at once (acme-client would retry for 75 s, then fail obscurely).
      const directory = await this.getDirectory();
      const { profile } = this.config.acme;
      if (profile) requireProfile(directory, profile);
      const ari = state.served && directory.renewalInfo;
      const client = await this.getClient();
      let unanswered = false;
      const pair = await orderCertificate({
        client,
        names: state.site.serverNames,
        challenges: this.store.challenges,
        // Once one token went unanswered (or a forward is known), the order's other names do not wait again.
        whenAnswerable: async (name, token, keyAuthorization) => {
          if (
            !(await this.whenAnswerable(
              name,
              token,
              keyAuthorization,
              unanswered || this.forwarded ? 0 : this.challengeWaitMs,
            ))
          )
            unanswered = true;
        },
        ...(profile ? { profile } : {}),
        ...(ari ? { replaces: ariCertId(state.served!.pair.certPem) } : {}),
      });
      const info = describe(pair);
      if (!fitFor(info, state.site.serverNames, this.now()))
        throw new Error(
          `the CA issued a certificate for ${info.names.join(', ')}, valid until ${info.notAfter.toISOString()}: not usable`,
        );
      const orderMs = Math.round(performance.now() - started);
      const renewAt = await nextRenewal(
        { info, pair },
        this.config.acme.renewRatio,
        await this.getDirectory().catch(() => ({})),
        this.now(),
        () => {},
      );
      const meta: CertMeta = {
        domain,
        names: info.names,
        issuer: info.issuer,
        serial: info.serial,
        not_before: info.notBefore.toISOString(),
        not_after: info.notAfter.toISOString(),
        next_renewal: renewAt.at.toISOString(),
        renewal_source: renewAt.source,
        ordered_at: new Date(this.now()).toISOString(),
        order_ms: orderMs,
        directory: this.config.acme.directoryUrl,
      };
      // Stored before it is served, so other processes and a restart find what we serve. A store that fails now
      // (Redis away) does not lose the certificate: it is served from memory and stored once the store is back.
      try {
        await this.store.write(domain, pair, meta);
      } catch (error) {
        state.unsaved = { pair, meta };
        this.log.error(
          { domain, store: this.store.where, err: (error as Error).message },
          'cannot store the new certificate: serving it from memory, storing it once the storage is back',
        );
      }
      this.install(state, pair, info, 'order');
      state.renewAt = renewAt;
      Object.assign(state, { failures: 0, nextAttemptAt: 0, lastError: undefined, corrupt: undefined });
      if (unanswered) this.forwarded = true;
      this.log.info(
        {
          domain,
          issuer: info.issuer,
          not_after: info.notAfter.toISOString(),
          next_renewal: renewAt.at.toISOString(),
          order_ms: orderMs,
        },
        'certificate obtained',
      );
      return 'ok';
    } catch (error) {
      this.directory = undefined; // look at the directory again before the next attempt
      await this.failed(state, error);
      return 'failed';
    } finally {
      await release();
    }
  }

  /** The CA is asked to validate only once the token can be fetched on this host the way it will fetch it: from
   *  this process's responder, or from another process sharing the storage that holds [acme] http_port (it answers
   *  from challenges/). Asking earlier fails the order, and the retry waits for retry_min. When nothing answers
   *  within waitMs but this process has [http] listeners, the port may be forwarded to one of them (a container's
   *  port mapping): the CA is asked anyway. False then. */
  private async whenAnswerable(
    name: string,
    token: string,
    keyAuthorization: string,
    waitMs: number,
  ): Promise<boolean> {
    const port = this.config.acme.httpPort;
    const targets: ProbeTarget[] = [
      { host: '127.0.0.1', port },
      { host: '::1', port },
    ];
    for (const own of this.httpListeners) {
      if (own.port === port && !['0.0.0.0', '::', '127.0.0.1', '::1'].includes(own.address))
        targets.push({ host: own.address, port });
    }
    const answered = await waitUntilAnswered(targets, name, token, keyAuthorization, {
      waitMs,
      signal: this.stopping.signal,
      onWaiting: () =>
        this.log.info(
          { domain: name, http_port: port, wait_s: Math.round(waitMs / 1000) },
          'waiting for the HTTP-01 token to be answered on this host before asking the CA to validate',
        ),
    });
    if (answered) return true;
    if (this.httpListeners.length === 0) {
      throw new Error(
        `nothing answers HTTP-01 on port ${port} of this host ([acme] http_port) and this process has no [http] listener: start the process that holds that port`,
      );
    }
    if (waitMs > 0) {
      this.log.warn(
        { domain: name, http_port: port, http: this.httpListeners.map((a) => a.port) },
        `nothing answers HTTP-01 on port ${port} of this host within ${Math.round(waitMs / 1000)} s: asking the CA anyway, in case that port is forwarded to one of our [http] listeners (set [acme] http_port to the port the CA's connections arrive on to skip this wait)`,
      );
    }
    return false;
  }

  /** The store cannot be reached (no lock can be taken): no order now, the next attempt after the backoff. */
  private postpone(state: SiteState, error: unknown): void {
    if (this.stopped) return;
    state.failures += 1;
    const delay = this.backoff(state);
    state.nextAttemptAt = this.now() + delay;
    state.lastError = `ACME storage unreachable: ${(error as Error).message}`;
    state.postponed = true;
    this.log.warn(
      {
        domain: state.site.name,
        store: this.store.where,
        err: (error as Error).message,
        retry_in_s: Math.round(delay / 1000),
      },
      `ACME storage unreachable: renewal postponed; still serving ${this.serving(state)}`,
    );
  }

  /** Stores the certificate obtained while the store was away, unless a newer one is stored by now. */
  private async storeUnsaved(state: SiteState): Promise<void> {
    const { pair, meta } = state.unsaved!;
    const domain = state.site.name;
    try {
      const release = await this.store.lock(domain);
      if (!release) return;
      try {
        const stored = await this.store.read(domain);
        if (stored.state !== 'ok' || stored.info.notAfter < describe(pair).notAfter)
          await this.store.write(domain, pair, meta);
        state.unsaved = undefined;
        this.log.info({ domain, store: this.store.where }, 'certificate obtained during the outage is stored now');
      } finally {
        await release();
      }
    } catch {
      /* still away: the next check tries again */
    }
  }

  private backoff(state: SiteState): number {
    return Math.min(this.config.acme.retryMinMs * 2 ** (state.failures - 1), this.config.acme.retryMaxMs);
  }

  private serving(state: SiteState): string {
    return state.served
      ? `the certificate valid until ${state.served.info.notAfter.toISOString()}`
      : 'the temporary self-signed certificate';
  }

  private async failed(state: SiteState, error: unknown): Promise<void> {
    if (this.stopped) return; // an order abandoned by the stop is no failure to report or retry
    const domain = state.site.name;
    let message = error instanceof Error ? error.message : String(error);
    // acme-client 5.4 retries a failed connection 5 times, then loses the error in its axios interceptor.
    if (/reading 'config'/.test(message))
      message = `no answer from the ACME server ${this.config.acme.directoryUrl} (connection failed after retries, or no answer within 60 s)`;
    state.failures += 1;
    const delay = this.backoff(state);
    state.nextAttemptAt = this.now() + delay;
    state.lastError = message;
    try {
      await this.store.writeMeta({
        ...((await this.store.readMeta(domain)) ?? { domain }),
        last_error: message,
        last_error_at: new Date(this.now()).toISOString(),
      });
    } catch (writeError) {
      this.log.warn({ domain, err: (writeError as Error).message }, 'cannot record the error in the certificate meta');
    }
    this.log.error(
      { domain, err: message, attempt: state.failures, retry_in_s: Math.round(delay / 1000) },
      `certificate order failed; still serving ${this.serving(state)}`,
    );
    this.events.emit('failed', domain, message);
  }
}
