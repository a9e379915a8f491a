// A site's sessions: the signed opaque cookie, the decrypted sessions in an LRU, the encrypted rows in the store.
// The hot path (a valid session cookie) costs one HMAC and one LRU lookup: no store read, no decryption.
import crypto from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { deriveKey, mac, macEquals, macKey, randomId, seal, unseal } from './crypto.ts';
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

export interface Session {
  id: string;
  identity: Identity;
  idToken?: string;
  accessToken?: string;
  refreshToken?: string;
  /** When the access token expires (ms since epoch); undefined = unknown. */
  accessExpiresAt?: number;
  /** The provider's session id (ID token sid), for RP- and front-channel logout. */
  sid?: string;
  createdAt: number;
  /** cookie_expire after login: the session never outlives this, refresh or not. */
  expiresAt: number;
  refreshedAt: number;
  /** Set on every save (see StoredSession.version). */
  version?: number;
}

export class SiteSessions {
  readonly cookieName: string;
  readonly #site: string;
  readonly #store: SessionStore;
  readonly #cookieKey: crypto.KeyObject;
  readonly #dataKey: Buffer;
  readonly #cache: LRUCache<string, Session>;
  /** id → store key, so the hot path with workers > 1 hashes nothing. */
  readonly #keys: LRUCache<string, string>;
  /** Cookie values whose HMAC already held: an exact repeat skips the HMAC (≈ 5 % of an authenticated request's
   *  CPU in the bench profile). Only values that passed the check get in, so nothing forged can match. */
  readonly #verified: LRUCache<string, true>;
  readonly #shared: boolean;

  /** shared = other processes (cluster workers) use the same store: a cached session is checked against the
   *  store's version on every use (one indexed read, no decryption), so a logout or refresh in one worker is
   *  seen at once by the others. */
  constructor(site: string, secret: Buffer, cookieName: string, store: SessionStore, cacheSize: number, shared = false) {
    this.#shared = shared;
    this.#site = site;
    this.cookieName = cookieName;
    this.#store = store;
    this.#cookieKey = macKey(secret, 'session-cookie');
    this.#dataKey = deriveKey(secret, 'session-at-rest');
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
      if (!macEquals(this.#cookieKey, `${this.cookieName}=${value.slice(0, dot)}`, value.slice(dot + 1))) return undefined;
      this.#verified.set(value, true);
    }
    const id = value.slice(0, dot);
    let session = this.#cache.get(id);
    if (session && this.#shared && this.#store.version(this.#storeKey(id)) !== session.version) {
      this.#cache.delete(id);
      session = undefined;
    }
    session ??= this.#load(id);
    if (!session) return undefined;
    if (session.expiresAt <= now) { this.delete(session); return undefined; }
    return session;
  }

  create(fields: Omit<Session, 'id' | 'createdAt' | 'expiresAt' | 'refreshedAt'>, lifetimeMs: number, now = Date.now()): Session {
    const session: Session = { ...fields, id: randomId(), createdAt: now, refreshedAt: now, expiresAt: now + lifetimeMs };
    this.save(session);
    return session;
  }

  save(session: Session): void {
    session.version = crypto.randomInt(2 ** 47);
    const key = this.#storeKey(session.id);
    const data = seal(this.#dataKey, Buffer.from(JSON.stringify(session)), `${this.#site}|${key}`);
    this.#store.put({ key, site: this.#site, expiresAt: session.expiresAt, sid: session.sid, version: session.version, data });
    this.#cache.set(session.id, session);
  }

  delete(session: Session): void {
    this.#store.delete(this.#storeKey(session.id));
    this.#cache.delete(session.id);
  }

  /** Only one process refreshes a session at a time; the others keep using its current (still valid) tokens. */
  claimRefresh(session: Session, leaseMs: number): boolean {
    return !this.#shared || this.#store.claimRefresh(this.#storeKey(session.id), Date.now(), leaseMs);
  }

  /** Front-channel logout: every session of this provider session. */
  deleteBySid(sid: string): number {
    const keys = new Set(this.#store.deleteBySid(this.#site, sid));
    for (const [id] of this.#cache.entries()) if (keys.has(this.#storeKey(id))) this.#cache.delete(id);
    return keys.size;
  }

  /** Forget the in-memory copies (as a restart would); the store keeps them. */
  dropCache(): void { this.#cache.clear(); }

  #load(id: string): Session | undefined {
    const key = this.#storeKey(id);
    const row = this.#store.get(key);
    if (!row || row.site !== this.#site) return undefined;
    const plain = unseal(this.#dataKey, row.data, `${this.#site}|${key}`);
    if (!plain) return undefined;
    const session = JSON.parse(plain.toString('utf8')) as Session;
    if (session.id !== id) return undefined;
    session.version = row.version;
    this.#cache.set(id, session);
    return session;
  }

  #storeKey(id: string): string {
    let key = this.#keys.get(id);
    if (key === undefined) this.#keys.set(id, key = crypto.createHash('sha256').update(id).digest('base64url'));
    return key;
  }
}
