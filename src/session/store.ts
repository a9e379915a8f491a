// Where sessions rest: an embedded SQLite file (node:sqlite, built into Node 24) so sessions survive a restart,
// or memory for throw-away setups, or Redis shared by several machines (redis-store.ts). The store only sees opaque
// keys and sealed blobs: the key is a hash of the session id (the database alone cannot be turned into cookies) and
// the data is encrypted by the caller. The local stores answer at once; Redis's answers are promises.
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { Answer } from '../base/types.ts';
import type { StoreHealth } from '../store/redis.ts';

export interface StoredSession {
  key: string;
  site: string;
  expiresAt: number;
  /** The provider's session id (ID token "sid"), for signing out by sid. */
  sid?: string;
  /** The user's subject at the provider (ID token "sub"), for back-channel logout by sub. */
  sub?: string;
  /** Changes on every save: another worker's cached copy is stale when its version differs. */
  version: number;
  data: Buffer;
}

/** The store could not be reached or did not answer in time (Redis down or slow): the request gets a 503, its
 *  session is neither ended nor its cookie cleared. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}

export interface SessionStore {
  /** local: this machine (workers share the SQLite file); redis: every instance on the same Redis and prefix. */
  readonly kind: 'local' | 'redis';
  get(key: string): Answer<StoredSession | undefined>;
  put(session: StoredSession): Answer<void>;
  /** Replaces a stored session; false (and nothing stored) when it is gone, e.g. signed out meanwhile. With a lease,
   *  only while that lease is still held and the stored version is still `expectedVersion` (a fenced save). */
  update(session: StoredSession, fence?: { lease: string; expectedVersion: number }): Answer<boolean>;
  delete(key: string): Answer<void>;
  /** Keys of the site's sessions with this provider sid (they are then deleted). */
  deleteBySid(site: string, sid: string): Answer<string[]>;
  /** Keys of the site's sessions of this subject (they are then deleted). */
  deleteBySub(site: string, sub: string): Answer<string[]>;
  /** The stored version of a session, undefined when it is gone (cheap: no data, no decryption). */
  version(key: string): Answer<number | undefined>;
  /** Takes the refresh lease of a session for leaseMs: its owner token, or undefined when another process holds it. */
  claimRefresh(key: string, now: number, leaseMs: number): Answer<string | undefined>;
  /** Extends a lease still held by owner; false when it was lost. */
  renewRefresh(key: string, owner: string, leaseMs: number): Answer<boolean>;
  /** Sets the end of a session's refresh lease (after a failed refresh: when the next may be tried, by any process). */
  holdRefresh(key: string, until: number): Answer<void>;
  /** true the first time an id is seen before `until` (ms since epoch), false for a replay (back-channel logout jti). */
  firstUse(id: string, until: number): Answer<boolean>;
  /** Drops expired sessions. */
  sweep(now: number): void;
  /** Redis: listener learns every session changed or ended by any instance (pub/sub), until the returned function is
   *  called. */
  onChange?(listener: (change: SessionChange) => void): () => void;
  /** Redis: false while it cannot be reached. */
  available?(): boolean;
  /** Redis: up or degraded, and since when (/ready). */
  health?(): StoreHealth;
  /** Redis: listener learns every change of health (back up: what was cached meanwhile is looked at again). */
  onHealth?(listener: (health: StoreHealth) => void): () => void;
  /** How long sessions cached in memory keep working while the store cannot be reached ([store] grace). */
  readonly graceMs?: number;
  close(): Answer<void>;
}

/** Published on every change of a shared store: every instance drops its copy of a changed or ended session. */
export interface SessionChange {
  kind: 'changed' | 'ended';
  site: string;
  key: string;
  version?: number;
}

/** Remembers ids until their end, in this process (the local backend's replay guard). */
export class SeenIds {
  readonly #until = new Map<string, number>();
  firstUse(id: string, until: number, now = Date.now()): boolean {
    if (this.#until.size > 10_000) for (const [seen, end] of this.#until) if (end < now) this.#until.delete(seen);
    const end = this.#until.get(id);
    if (end !== undefined && end >= now) return false;
    this.#until.set(id, until);
    return true;
  }
}

export function openSessionStore(kind: 'sqlite' | 'memory', file: string): SessionStore {
  return kind === 'sqlite' ? new SqliteSessionStore(file) : new MemorySessionStore();
}

/** How long a statement waits for another process's lock (SQLite's busy handler). */
const BUSY_TIMEOUT_MS = 5_000;
const SQLITE_BUSY = 5;

/**
 * Runs sql, again while SQLite answers SQLITE_BUSY, until BUSY_TIMEOUT_MS have passed. Some locks are not waited for
 * by the busy handler: switching a fresh file to WAL, the exclusive lock of the last connection cleaning up as it
 * closes, and of the first one recovering the WAL (https://sqlite.org/wal.html#sometimes_queries_return_sqlite_busy_in_wal_mode).
 */
function retryWhileBusy(db: DatabaseSync, sql: string): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (let pause = 2; ; pause = Math.min(pause * 2, 100)) {
    try {
      db.exec(sql);
      return;
    } catch (error) {
      if (db.isTransaction) db.exec('ROLLBACK');
      // The low byte is the primary code also when SQLite reports an extended one (SQLITE_BUSY_RECOVERY, …).
      if ((((error as { errcode?: number }).errcode ?? 0) & 0xff) !== SQLITE_BUSY || Date.now() >= deadline)
        throw error;
      // Start-up only, before anything is served: a synchronous pause keeps the store's API synchronous.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, pause);
    }
  }
}

class SqliteSessionStore implements SessionStore {
  readonly kind = 'local';
  readonly #seen = new SeenIds();
  readonly #db: DatabaseSync;
  readonly #get: StatementSync;
  readonly #put: StatementSync;
  readonly #update: StatementSync;
  readonly #delete: StatementSync;
  readonly #bySid: StatementSync;
  readonly #bySub: StatementSync;
  readonly #sweep: StatementSync;
  readonly #version: StatementSync;
  readonly #claim: StatementSync;
  readonly #hold: StatementSync;

  constructor(file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // The busy timeout from the first statement on: every worker of a cluster opens the file at the same moment.
    this.#db = new DatabaseSync(file, { timeout: BUSY_TIMEOUT_MS });
    fs.chmodSync(file, 0o600);
    // WAL: readers never wait for the writer; NORMAL sync is durable enough for sessions (a crash loses at most the
    // last commits). The schema is created under a write lock taken up front (BEGIN IMMEDIATE waits for it), so a
    // second creator waits and then finds it made.
    retryWhileBusy(
      this.#db,
      `PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
      BEGIN IMMEDIATE;
      CREATE TABLE IF NOT EXISTS sessions (key TEXT PRIMARY KEY, site TEXT NOT NULL, expires_at INTEGER NOT NULL, sid TEXT, sub TEXT,
        version INTEGER NOT NULL DEFAULT 0, refresh_until INTEGER NOT NULL DEFAULT 0, data BLOB NOT NULL);
      CREATE INDEX IF NOT EXISTS sessions_sid ON sessions (site, sid);
      CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at);
      COMMIT;`,
    );
    // The subject column came with back-channel logout: a file made before gets it once. Another worker may add
    // it at the same moment ("duplicate column"), which is as good.
    const hasSub = () =>
      (this.#db.prepare('PRAGMA table_info(sessions)').all() as { name: string }[]).some((c) => c.name === 'sub');
    if (!hasSub()) {
      try {
        retryWhileBusy(this.#db, 'ALTER TABLE sessions ADD COLUMN sub TEXT');
      } catch (error) {
        if (!hasSub()) throw error;
      }
    }
    retryWhileBusy(this.#db, 'CREATE INDEX IF NOT EXISTS sessions_sub ON sessions (site, sub)');
    this.#get = this.#db.prepare('SELECT key, site, expires_at, sid, sub, version, data FROM sessions WHERE key = ?');
    // REPLACE also resets refresh_until: saving the refreshed session ends the lease.
    this.#put = this.#db.prepare(
      'INSERT OR REPLACE INTO sessions (key, site, expires_at, sid, sub, version, data) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.#update = this.#db.prepare(
      'UPDATE sessions SET site = ?, expires_at = ?, sid = ?, sub = ?, version = ?, refresh_until = 0, data = ? WHERE key = ?',
    );
    this.#version = this.#db.prepare('SELECT version FROM sessions WHERE key = ?');
    this.#claim = this.#db.prepare('UPDATE sessions SET refresh_until = ? WHERE key = ? AND refresh_until < ?');
    this.#hold = this.#db.prepare('UPDATE sessions SET refresh_until = ? WHERE key = ?');
    this.#delete = this.#db.prepare('DELETE FROM sessions WHERE key = ?');
    this.#bySid = this.#db.prepare('DELETE FROM sessions WHERE site = ? AND sid = ? RETURNING key');
    this.#bySub = this.#db.prepare('DELETE FROM sessions WHERE site = ? AND sub = ? RETURNING key');
    this.#sweep = this.#db.prepare('DELETE FROM sessions WHERE expires_at < ?');
  }

  get(key: string): StoredSession | undefined {
    const row = this.#get.get(key) as
      | {
          key: string;
          site: string;
          expires_at: number;
          sid: string | null;
          sub: string | null;
          version: number;
          data: Uint8Array;
        }
      | undefined;
    if (!row) return undefined;
    return {
      key: row.key,
      site: row.site,
      expiresAt: row.expires_at,
      sid: row.sid ?? undefined,
      sub: row.sub ?? undefined,
      version: row.version,
      data: Buffer.from(row.data),
    };
  }

  put(s: StoredSession): void {
    this.#put.run(s.key, s.site, s.expiresAt, s.sid ?? null, s.sub ?? null, s.version, s.data);
  }
  update(s: StoredSession): boolean {
    return (
      Number(this.#update.run(s.site, s.expiresAt, s.sid ?? null, s.sub ?? null, s.version, s.data, s.key).changes) ===
      1
    );
  }
  version(key: string): number | undefined {
    return (this.#version.get(key) as { version: number } | undefined)?.version;
  }
  claimRefresh(key: string, now: number, leaseMs: number): string | undefined {
    return Number(this.#claim.run(now + leaseMs, key, now).changes) === 1 ? 'local' : undefined;
  }
  renewRefresh(): boolean {
    return true;
  }
  firstUse(id: string, until: number): boolean {
    return this.#seen.firstUse(id, until);
  }
  holdRefresh(key: string, until: number): void {
    this.#hold.run(until, key);
  }
  delete(key: string): void {
    this.#delete.run(key);
  }
  deleteBySid(site: string, sid: string): string[] {
    return (this.#bySid.all(site, sid) as { key: string }[]).map((r) => r.key);
  }
  deleteBySub(site: string, sub: string): string[] {
    return (this.#bySub.all(site, sub) as { key: string }[]).map((r) => r.key);
  }
  sweep(now: number): void {
    this.#sweep.run(now);
  }
  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}

class MemorySessionStore implements SessionStore {
  readonly kind = 'local';
  readonly #seen = new SeenIds();
  readonly #rows = new Map<string, StoredSession>();
  get(key: string) {
    return this.#rows.get(key);
  }
  put(s: StoredSession) {
    this.#rows.set(s.key, s);
  }
  update(s: StoredSession) {
    if (!this.#rows.has(s.key)) return false;
    this.#rows.set(s.key, s);
    return true;
  }
  delete(key: string) {
    this.#rows.delete(key);
  }
  deleteBySid(site: string, sid: string) {
    const keys = [...this.#rows.values()].filter((s) => s.site === site && s.sid === sid).map((s) => s.key);
    for (const key of keys) this.#rows.delete(key);
    return keys;
  }
  deleteBySub(site: string, sub: string) {
    const keys = [...this.#rows.values()].filter((s) => s.site === site && s.sub === sub).map((s) => s.key);
    for (const key of keys) this.#rows.delete(key);
    return keys;
  }
  version(key: string) {
    return this.#rows.get(key)?.version;
  }
  claimRefresh() {
    return 'local';
  }
  renewRefresh() {
    return true;
  }
  firstUse(id: string, until: number) {
    return this.#seen.firstUse(id, until);
  }
  holdRefresh() {}
  sweep(now: number) {
    for (const [key, s] of this.#rows) if (s.expiresAt < now) this.#rows.delete(key);
  }
  close() {
    this.#rows.clear();
  }
}
