// A site's sessions: the signed opaque cookie, the decrypted sessions in an LRU, the encrypted rows in the store.
// The hot path (a valid session cookie) costs one HMAC and one LRU lookup: no store read, no decryption. With a
// shared store (Redis), a cached session is trusted until another instance publishes a change to it, and is looked
// at again in the store at most once per REVALIDATE_MS (a published change lost while the subscriber reconnected).
// The LRU holds only what a request needs: tokens that no request sends upstream (the refresh token always, the ID
// token unless it is the Bearer token) stay in the store and are read when a refresh or logout needs them. With
// Entra-sized tokens that halves the memory of 10,000 cached sessions (bench: authenticated-10k-sessions).
import crypto from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { derivedKey, mac, macEquals, randomId, seal, unseal } from './crypto.ts';
import type { Answer } from '../base/types.ts';
import { StoreUnavailableError, type SessionStore } from './store.ts';

export interface Identity {
  /** What X-Auth-Request-User carries: email, else preferred_username / upn, else the subject (see identity.ts). */
  user: string;
  email?: string;
  preferredUsername?: string;
  groups: string[];
  roles: string[];
  sub: string;
  /** Entra: tenant and object id. */
  tid?: string;
  oid?: string;
}

/** The provider's tokens of a session, as stored. */
export interface SessionTokens {
  idToken?: string;
  accessToken?: string;
  refreshToken?: string;
}

export interface Session {
  id: string;
  identity: Identity;
  /** In memory only when the site sends it upstream; always in the store (see SiteSessions.tokens). */
  accessToken?: string;
  /** In memory only when the site sends it upstream as the Bearer token; always in the store. */
  idToken?: string;
  /** Whether the store holds a refresh token for this session. */
  refreshable: boolean;
  /** When the access token expires (ms since epoch); undefined = unknown. */
  accessExpiresAt?: number;
  /** How long the access token lives from its issue (expires_in); refresh is due in its last quarter. */
  accessLifetimeMs?: number;
  /** The provider's session id (ID token sid), for RP- and front-channel logout. */
  sid?: string;
  createdAt: number;
  /** cookie_expire after login: the session never outlives this, refresh or not. */
  expiresAt: number;
  refreshedAt: number;
  /** Set on every save (see StoredSession.version). */
  version?: number;
}

/** Which tokens a site's requests send upstream, and so keep in memory. */
export interface TokensInMemory {
  accessToken: boolean;
  idToken: boolean;
}

/** A cached session of a shared store (Redis) is looked at again in the store once it was last checked this long ago:
 *  the bound on staleness should a published change be lost. */
export const REVALIDATE_MS = 5_000;
/** After a look at the store failed, cached sessions are served (within [store] grace) without asking again for this
 *  long, so a slow Redis costs one request at most one command timeout per second and session. */
const RETRY_MS = 1_000;
/** The refresh lease in a shared store is this short and renewed while the refresh runs: an instance that dies
 *  holding it (kill -9) is replaced within these seconds, not after the whole provider timeout. */
const SHARED_LEASE_MS = 5_000;

interface Cached {
  session: Session;
  /** When the store last confirmed this version (or it was read or written). */
  checkedAt: number;
  /** When a look at the store last failed. */
  failedAt: number;
}

/** A refresh lease held by this process; stop() ends its renewal (the save or the session's end releases it). */
export interface RefreshLease {
  owner: string;
  stop(): void;
}

export class SiteSessions {
  readonly cookieName: string;
  readonly #inMemory: TokensInMemory;
  readonly #site: string;
  readonly #store: SessionStore;
  readonly #cookieKey: crypto.KeyObject;
  readonly #dataKey: crypto.KeyObject;
  /** store key → the decrypted session. */
  readonly #cache: LRUCache<string, Cached>;
  /** id → store key, so the hot path hashes nothing. */
  readonly #keys: LRUCache<string, string>;
  /** Cookie values whose HMAC already held: an exact repeat skips the HMAC (≈ 5 % of an authenticated request's
   *  CPU in the bench profile). Only values that passed the check get in, so nothing forged can match. */
  readonly #verified: LRUCache<string, true>;
  /** private: nobody else writes the store; workers: cluster workers share the SQLite file (a cached session is checked
   *  against the store's version on every use: one indexed read); shared: Redis (published changes + revalidation). */
  readonly #mode: 'private' | 'workers' | 'shared';
  readonly #graceMs: number;
  readonly #revalidating = new Map<string, Promise<number | undefined>>();
  /** Cached sessions checked before this were cached while the store was unreachable: looked at again. */
  #resyncAt = 0;
  readonly #endedListeners: ((key: string) => void)[] = [];
  /** Stops listening to the store (a reload's new configuration has its own SiteSessions on the same store). */
  readonly #unlisten: (() => void)[] = [];

  /** shared = other processes (cluster workers) use the same local store. A Redis store is always shared. */
  constructor(
    site: string,
    secret: Buffer,
    cookieName: string,
    store: SessionStore,
    cacheSize: number,
    options: { shared?: boolean; inMemory?: TokensInMemory } = {},
  ) {
    this.#mode = store.kind === 'redis' ? 'shared' : options.shared ? 'workers' : 'private';
    this.#graceMs = store.graceMs ?? 0;
    this.#inMemory = options.inMemory ?? { accessToken: true, idToken: true };
    this.#site = site;
    this.cookieName = cookieName;
    this.#store = store;
    this.#cookieKey = derivedKey(secret, 'session-cookie');
    this.#dataKey = derivedKey(secret, 'session-at-rest');
    this.#cache = new LRUCache({ max: cacheSize });
    this.#keys = new LRUCache({ max: cacheSize });
    this.#verified = new LRUCache({ max: cacheSize });
    // Another instance changed or ended a session: drop the copy (our own save publishes the version we hold).
    const unlistenChanges = store.onChange?.((change) => {
      if (change.site !== this.#site) return;
      if (change.kind === 'ended') {
        this.#cache.delete(change.key);
        this.#ended(change.key);
      } else if (this.#cache.peek(change.key)?.session.version !== change.version) this.#cache.delete(change.key);
    });
    const unlistenHealth = store.onHealth?.((health) => {
      if (health.state === 'up') this.#resyncAt = Date.now();
    });
    for (const unlisten of [unlistenChanges, unlistenHealth]) if (unlisten) this.#unlisten.push(unlisten);
  }

  /** The cookie value for a session: "<id>.<HMAC of id>". */
  cookieValue(session: Session): string {
    return `${session.id}.${mac(this.#cookieKey, `${this.cookieName}=${session.id}`).toString('base64url')}`;
  }

  /** The session a cookie value names, if the signature holds and the session lives: at once (no promise) when the
   *  cached copy answers, a promise when the store must be read. Rejects with StoreUnavailableError when the store
   *  must be read and cannot be (never: "no session"). */
  fromCookie(value: string | undefined, now = Date.now()): Answer<Session | undefined> {
    if (!value) return undefined;
    const dot = value.indexOf('.');
    if (dot !== 43) return undefined;
    if (!this.#verified.has(value)) {
      if (!macEquals(this.#cookieKey, `${this.cookieName}=${value.slice(0, dot)}`, value.slice(dot + 1)))
        return undefined;
      this.#verified.set(ownCopy(value), true);
    }
    const id = value.slice(0, dot);
    const key = this.#storeKey(id);
    const entry = this.#cache.get(key);
    // The hot path: nobody else writes the store, or a shared store's copy was checked recently enough.
    if (
      entry &&
      (this.#mode === 'private' ||
        (this.#mode === 'shared' && now - entry.checkedAt < REVALIDATE_MS && entry.checkedAt >= this.#resyncAt))
    )
      return entry.session.expiresAt > now ? entry.session : this.#endExpired(entry.session);
    return this.#fromStore(id, key, entry, now);
  }

  /** fromCookie's answer when the store has a say: a cached copy checked against it, or the session read from it. */
  async #fromStore(id: string, key: string, entry: Cached | undefined, now: number): Promise<Session | undefined> {
    if (entry && this.#mode === 'workers' && (await this.#store.version(key)) !== entry.session.version) {
      this.#cache.delete(key);
      entry = undefined;
    } else if (entry && this.#mode === 'shared') {
      const checked = await this.#revalidate(key, entry, now);
      if (checked === 'gone') return undefined;
      entry = checked;
    }
    const session = entry?.session ?? (await this.#load(id));
    if (!session) return undefined;
    if (session.expiresAt <= now) return this.#endExpired(session);
    return session;
  }

  /** A session found past its end is no session; Redis drops it by itself at its end (PEXPIREAT), a local store is told. */
  async #endExpired(session: Session): Promise<undefined> {
    await Promise.resolve(this.delete(session)).catch((error: unknown) => {
      if (!(error instanceof StoreUnavailableError)) throw error;
    });
    return undefined;
  }

  async create(
    fields: Omit<Session, 'id' | 'createdAt' | 'expiresAt' | 'refreshedAt' | 'refreshable' | keyof SessionTokens> &
      SessionTokens,
    lifetimeMs: number,
    now = Date.now(),
  ): Promise<Session> {
    const { idToken, accessToken, refreshToken, ...rest } = fields;
    return this.save(
      { ...rest, id: randomId(), createdAt: now, refreshedAt: now, expiresAt: now + lifetimeMs, refreshable: false },
      { idToken, accessToken, refreshToken },
    );
  }

  /** Stores the session with new tokens, or with the ones already stored; returns what the cache now holds. */
  async save(session: Session, tokens?: SessionTokens): Promise<Session> {
    return (await this.#write(session, tokens ?? (await this.tokens(session)), 'put'))!;
  }

  /** Like save, but only while the session is still stored: a refresh that completes after a sign-out must not bring
   *  the session back. With a shared store's lease, only while the lease is still ours and nobody saved the session
   *  since (a fenced save). Undefined when it did not save. */
  update(session: Session, tokens: SessionTokens, lease?: RefreshLease): Promise<Session | undefined> {
    const fence =
      lease && this.#mode === 'shared' && session.version !== undefined
        ? { lease: lease.owner, expectedVersion: session.version }
        : undefined;
    return this.#write(session, tokens, 'update', fence);
  }

  /** The session as stored now: the same object while no other save changed it, a fresh copy after one (another
   *  worker's or instance's refresh), undefined once it has ended. One indexed read while nothing changed. */
  async current(session: Session): Promise<Session | undefined> {
    const key = this.#storeKey(session.id);
    const version = await this.#store.version(key);
    if (version === session.version) {
      const entry = this.#cache.peek(key);
      if (entry?.session === session) entry.checkedAt = Date.now();
      return session;
    }
    this.#cache.delete(key);
    return version === undefined ? undefined : this.#load(session.id);
  }

  /** The session's tokens as stored (a store read and a decryption: for refresh and logout, not for every request). */
  async tokens(session: Session): Promise<SessionTokens> {
    const stored = await this.#read(session.id);
    return stored
      ? { idToken: stored.idToken, accessToken: stored.accessToken, refreshToken: stored.refreshToken }
      : {};
  }

  async delete(session: Session): Promise<void> {
    const key = this.#storeKey(session.id);
    await this.#store.delete(key);
    this.#cache.delete(key);
    this.#ended(key);
  }

  /** The session's key in the store: a hash of its id, so it names the session (in events, across workers) without
   *  being usable as a cookie. */
  key(session: Session): string {
    return this.#storeKey(session.id);
  }

  /** listener learns the key of every session that ends here: deleted (sign-out, found expired, a refresh the
   *  provider refused), signed out by sid or sub (front- and back-channel logout), or ended by another instance. */
  onEnded(listener: (key: string) => void): void {
    this.#endedListeners.push(listener);
  }

  /** Only one process refreshes a session at a time (workers > 1 or a shared store: a lease in the store); the others
   *  wait for its save. Undefined when another process holds the lease. */
  async claimRefresh(session: Session, leaseMs: number): Promise<RefreshLease | undefined> {
    if (this.#mode === 'private') return { owner: 'local', stop() {} };
    const key = this.#storeKey(session.id);
    const ms = this.#mode === 'shared' ? Math.min(leaseMs, SHARED_LEASE_MS) : leaseMs;
    const owner = await this.#store.claimRefresh(key, Date.now(), ms);
    if (owner === undefined) return undefined;
    if (this.#mode !== 'shared') return { owner, stop() {} };
    const renew = setInterval(() => {
      void Promise.resolve(this.#store.renewRefresh(key, owner, ms)).catch(() => {});
    }, ms / 3).unref();
    return { owner, stop: () => clearInterval(renew) };
  }

  /** After a failed refresh: no process tries the next one for ms. */
  async deferRefresh(session: Session, ms: number): Promise<void> {
    if (this.#mode !== 'private') await this.#store.holdRefresh(this.#storeKey(session.id), Date.now() + ms);
  }

  /** Front-channel and back-channel logout: every session of this provider session. */
  async deleteBySid(sid: string): Promise<number> {
    return this.#endAll(await this.#store.deleteBySid(this.#site, sid));
  }

  /** Back-channel logout without sid: every session of this user. */
  async deleteBySub(sub: string): Promise<number> {
    return this.#endAll(await this.#store.deleteBySub(this.#site, sub));
  }

  /** Whether an id (a logout token's jti) is seen for the first time; remembered until `until` (shared with Redis). */
  async firstUse(id: string, until: number): Promise<boolean> {
    return this.#store.firstUse(`${this.#site}:${id}`, until);
  }

  /** How long cached sessions serve while the store cannot be reached ([store] grace; 0 for a local store). */
  get graceMs(): number {
    return this.#graceMs;
  }

  /** Caches a session the store could not take (a refresh saved later), as it will be stored: what this process
   *  serves meanwhile. A change published by another instance, or its revalidation, replaces it. */
  remember(session: Session, tokens: SessionTokens): Session {
    const { refreshable: _, ...fields } = session;
    const cached = this.#inMemoryPart({ ...fields, ...tokens });
    this.#cache.set(this.#storeKey(session.id), { session: cached, checkedAt: Date.now(), failedAt: Date.now() });
    return cached;
  }

  /** Forget the in-memory copies (as a restart would); the store keeps them. */
  dropCache(): void {
    this.#cache.clear();
  }

  /** This configuration is done: no more store events reach it (the store itself may serve the next one). */
  close(): void {
    for (const unlisten of this.#unlisten.splice(0)) unlisten();
    this.#cache.clear();
  }

  #endAll(ended: string[]): number {
    const keys = new Set(ended);
    for (const key of keys) {
      this.#cache.delete(key);
      this.#ended(key);
    }
    return keys.size;
  }

  #ended(key: string): void {
    for (const listener of this.#endedListeners) listener(key);
  }

  /** A shared store's cached session, looked at again: still the same (checked now), changed (undefined: load it),
   *  or gone. While the store cannot be reached the cached copy serves for [store] grace after its last check. */
  async #revalidate(key: string, entry: Cached, now: number): Promise<Cached | 'gone' | undefined> {
    if (this.#store.available?.() === false || now - entry.failedAt < RETRY_MS) return this.#withinGrace(entry, now);
    let pending = this.#revalidating.get(key);
    if (!pending) {
      pending = Promise.resolve(this.#store.version(key)).finally(() => this.#revalidating.delete(key));
      this.#revalidating.set(key, pending);
    }
    let version: number | undefined;
    try {
      version = await pending;
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      entry.failedAt = Date.now();
      return this.#withinGrace(entry, now);
    }
    if (version === undefined) {
      this.#cache.delete(key);
      this.#ended(key);
      return 'gone';
    }
    if (version !== entry.session.version) {
      this.#cache.delete(key);
      return undefined;
    }
    entry.checkedAt = Math.max(entry.checkedAt, now);
    return entry;
  }

  #withinGrace(entry: Cached, now: number): Cached {
    if (now - entry.checkedAt <= this.#graceMs) return entry;
    throw new StoreUnavailableError('the session store cannot be reached and the cached session is past its grace');
  }

  async #write(
    session: Session,
    tokens: SessionTokens,
    how: 'put' | 'update',
    fence?: { lease: string; expectedVersion: number },
  ): Promise<Session | undefined> {
    const version = crypto.randomInt(2 ** 47);
    const { refreshable: _, ...fields } = session;
    const stored = { ...fields, ...tokens, version };
    const key = this.#storeKey(session.id);
    const data = seal(this.#dataKey, Buffer.from(JSON.stringify(stored)), `${this.#site}|${key}`);
    const row = {
      key,
      site: this.#site,
      expiresAt: session.expiresAt,
      sid: session.sid,
      sub: session.identity.sub,
      version,
      data,
    };
    if (how === 'put') await this.#store.put(row);
    else if (!(await this.#store.update(row, fence))) {
      this.#cache.delete(key);
      return undefined;
    }
    const cached = this.#inMemoryPart(stored);
    this.#cache.set(key, { session: cached, checkedAt: Date.now(), failedAt: 0 });
    return cached;
  }

  async #load(cookieId: string): Promise<Session | undefined> {
    // The id kept as a cache key (here and in #keys) must not be the slice of the request's Cookie header it came as.
    const id = ownCopy(cookieId);
    const stored = await this.#read(id);
    if (!stored) return undefined;
    const session = this.#inMemoryPart(stored);
    this.#cache.set(this.#storeKey(id), { session, checkedAt: Date.now(), failedAt: 0 });
    return session;
  }

  async #read(id: string): Promise<StoredSession | undefined> {
    const key = this.#storeKey(id);
    const row = await this.#store.get(key);
    if (!row || row.site !== this.#site) return undefined;
    const plain = unseal(this.#dataKey, row.data, `${this.#site}|${key}`);
    if (!plain) return undefined;
    const stored = JSON.parse(plain.toString('utf8')) as StoredSession;
    if (stored.id !== id) return undefined;
    stored.version = row.version;
    return stored;
  }

  /** What the cache keeps of a stored session: no token that no request sends, no string twice. */
  #inMemoryPart(stored: StoredSession): Session {
    const { idToken, accessToken, refreshToken, ...fields } = stored;
    // JSON.parse makes a string per field: user, email and preferred_username are often the same address.
    const identity = fields.identity;
    if (identity.email === identity.user) identity.email = identity.user;
    if (identity.preferredUsername === identity.user) identity.preferredUsername = identity.user;
    return {
      ...fields,
      refreshable: refreshToken !== undefined,
      ...(this.#inMemory.accessToken && accessToken !== undefined ? { accessToken } : {}),
      ...(this.#inMemory.idToken && idToken !== undefined ? { idToken } : {}),
    };
  }

  #storeKey(id: string): string {
    let key = this.#keys.get(id);
    // Copied on a miss only: the id a request brings is a slice of its Cookie header (see ownCopy).
    if (key === undefined)
      this.#keys.set(ownCopy(id), (key = crypto.createHash('sha256').update(id).digest('base64url')));
    return key;
  }
}

/**
 * A copy of an ASCII string that holds only its own characters. A cookie value read from the Cookie header is a slice
 * of it, and V8 keeps the whole string a slice was cut from alive as long as the slice lives: as a cache key it would
 * hold the request's Cookie header (every cookie of the site, often kilobytes) for as long as the session is cached.
 */
function ownCopy(text: string): string {
  return Buffer.from(text, 'latin1').toString('latin1');
}

/** The sealed JSON of a store row: the session with all its tokens. */
type StoredSession = Omit<Session, 'refreshable'> & SessionTokens;
