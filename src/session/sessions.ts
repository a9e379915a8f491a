// A site's sessions: the signed opaque cookie, the decrypted sessions in an LRU, the encrypted rows in the store.
// The hot path (a valid session cookie) costs one HMAC and one LRU lookup: no store read, no decryption.
// The LRU holds only what a request needs: tokens that no request sends upstream (the refresh token always, the ID
// token unless it is the Bearer token) stay in the store and are read when a refresh or logout needs them. With
// Entra-sized tokens that halves the memory of 10,000 cached sessions (bench: authenticated-10k-sessions).
import crypto from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { derivedKey, mac, macEquals, randomId, seal, unseal } from './crypto.ts';
import type { SessionStore } from './store.ts';

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

export class SiteSessions {
  readonly cookieName: string;
  readonly #inMemory: TokensInMemory;
  readonly #site: string;
  readonly #store: SessionStore;
  readonly #cookieKey: crypto.KeyObject;
  readonly #dataKey: crypto.KeyObject;
  readonly #cache: LRUCache<string, Session>;
  /** id → store key, so the hot path with workers > 1 hashes nothing. */
  readonly #keys: LRUCache<string, string>;
  /** Cookie values whose HMAC already held: an exact repeat skips the HMAC (≈ 5 % of an authenticated request's
   *  CPU in the bench profile). Only values that passed the check get in, so nothing forged can match. */
  readonly #verified: LRUCache<string, true>;
  readonly #shared: boolean;
  readonly #endedListeners: ((key: string) => void)[] = [];

  /** shared = other processes (cluster workers) use the same store: a cached session is checked against the
   *  store's version on every use (one indexed read, no decryption), so a logout or refresh in one worker is
   *  seen at once by the others. */
  constructor(
    site: string,
    secret: Buffer,
    cookieName: string,
    store: SessionStore,
    cacheSize: number,
    options: { shared?: boolean; inMemory?: TokensInMemory } = {},
  ) {
    this.#shared = options.shared ?? false;
    this.#inMemory = options.inMemory ?? { accessToken: true, idToken: true };
    this.#site = site;
    this.cookieName = cookieName;
    this.#store = store;
    this.#cookieKey = derivedKey(secret, 'session-cookie');
    this.#dataKey = derivedKey(secret, 'session-at-rest');
    this.#cache = new LRUCache({ max: cacheSize });
    this.#keys = new LRUCache({ max: cacheSize });
    this.#verified = new LRUCache({ max: cacheSize });
  }

  /** The cookie value for a session: "<id>.<HMAC of id>". */
  cookieValue(session: Session): string {
    return `${session.id}.${mac(this.#cookieKey, `${this.cookieName}=${session.id}`).toString('base64url')}`;
  }

  /** The session a cookie value names, if the signature holds and the session lives. */
  fromCookie(value: string | undefined, now = Date.now()): Session | undefined {
    if (!value) return undefined;
    const dot = value.indexOf('.');
    if (dot !== 43) return undefined;
    if (!this.#verified.has(value)) {
      if (!macEquals(this.#cookieKey, `${this.cookieName}=${value.slice(0, dot)}`, value.slice(dot + 1)))
        return undefined;
      this.#verified.set(ownCopy(value), true);
    }
    const id = value.slice(0, dot);
    let session = this.#cache.get(id);
    if (session && this.#shared && this.#store.version(this.#storeKey(id)) !== session.version) {
      this.#cache.delete(id);
      session = undefined;
    }
    session ??= this.#load(id);
    if (!session) return undefined;
    if (session.expiresAt <= now) {
      this.delete(session);
      return undefined;
    }
    return session;
  }

  create(
    fields: Omit<Session, 'id' | 'createdAt' | 'expiresAt' | 'refreshedAt' | 'refreshable' | keyof SessionTokens> &
      SessionTokens,
    lifetimeMs: number,
    now = Date.now(),
  ): Session {
    const { idToken, accessToken, refreshToken, ...rest } = fields;
    return this.save(
      { ...rest, id: randomId(), createdAt: now, refreshedAt: now, expiresAt: now + lifetimeMs, refreshable: false },
      { idToken, accessToken, refreshToken },
    );
  }

  /** Stores the session with new tokens, or with the ones already stored; returns what the cache now holds. */
  save(session: Session, tokens: SessionTokens = this.tokens(session)): Session {
    return this.#write(session, tokens, 'put')!;
  }

  /** Like save, but only while the session is still stored: a refresh that completes after a sign-out must not bring
   *  the session back. Undefined when it is gone. */
  update(session: Session, tokens: SessionTokens): Session | undefined {
    return this.#write(session, tokens, 'update');
  }

  /** The session as stored now: the same object while no other save changed it, a fresh copy after one (another
   *  worker's refresh), undefined once it has ended. One indexed read while nothing changed. */
  current(session: Session): Session | undefined {
    const version = this.#store.version(this.#storeKey(session.id));
    if (version === session.version) return session;
    this.#cache.delete(session.id);
    return version === undefined ? undefined : this.#load(session.id);
  }

  /** The session's tokens as stored (a store read and a decryption: for refresh and logout, not for every request). */
  tokens(session: Session): SessionTokens {
    const stored = this.#read(session.id);
    return stored
      ? { idToken: stored.idToken, accessToken: stored.accessToken, refreshToken: stored.refreshToken }
      : {};
  }

  delete(session: Session): void {
    const key = this.#storeKey(session.id);
    this.#store.delete(key);
    this.#cache.delete(session.id);
    this.#ended(key);
  }

  /** The session's key in the store: a hash of its id, so it names the session (in events, across workers) without
   *  being usable as a cookie. */
  key(session: Session): string {
    return this.#storeKey(session.id);
  }

  /** listener learns the key of every session that ends here: deleted (sign-out, found expired, a refresh the
   *  provider refused) or signed out by sid (front-channel logout). */
  onEnded(listener: (key: string) => void): void {
    this.#endedListeners.push(listener);
  }

  /** Only one process refreshes a session at a time (workers > 1: a lease in the store); the others wait for its save. */
  claimRefresh(session: Session, leaseMs: number): boolean {
    return !this.#shared || this.#store.claimRefresh(this.#storeKey(session.id), Date.now(), leaseMs);
  }

  /** After a failed refresh: no process tries the next one for ms. */
  deferRefresh(session: Session, ms: number): void {
    if (this.#shared) this.#store.holdRefresh(this.#storeKey(session.id), Date.now() + ms);
  }

  /** Front-channel logout: every session of this provider session. */
  deleteBySid(sid: string): number {
    const keys = new Set(this.#store.deleteBySid(this.#site, sid));
    for (const [id] of this.#cache.entries()) if (keys.has(this.#storeKey(id))) this.#cache.delete(id);
    for (const key of keys) this.#ended(key);
    return keys.size;
  }

  /** Forget the in-memory copies (as a restart would); the store keeps them. */
  dropCache(): void {
    this.#cache.clear();
  }

  #ended(key: string): void {
    for (const listener of this.#endedListeners) listener(key);
  }

  #write(session: Session, tokens: SessionTokens, how: 'put' | 'update'): Session | undefined {
    const version = crypto.randomInt(2 ** 47);
    const { refreshable: _, ...fields } = session;
    const stored = { ...fields, ...tokens, version };
    const key = this.#storeKey(session.id);
    const data = seal(this.#dataKey, Buffer.from(JSON.stringify(stored)), `${this.#site}|${key}`);
    const row = { key, site: this.#site, expiresAt: session.expiresAt, sid: session.sid, version, data };
    if (how === 'put') this.#store.put(row);
    else if (!this.#store.update(row)) {
      this.#cache.delete(session.id);
      return undefined;
    }
    const cached = this.#inMemoryPart(stored);
    this.#cache.set(session.id, cached);
    return cached;
  }

  #load(cookieId: string): Session | undefined {
    // The id kept as a cache key (here and in #keys) must not be the slice of the request's Cookie header it came as.
    const id = ownCopy(cookieId);
    const stored = this.#read(id);
    if (!stored) return undefined;
    const session = this.#inMemoryPart(stored);
    this.#cache.set(id, session);
    return session;
  }

  #read(id: string): StoredSession | undefined {
    const key = this.#storeKey(id);
    const row = this.#store.get(key);
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
    if (key === undefined) this.#keys.set(id, (key = crypto.createHash('sha256').update(id).digest('base64url')));
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
