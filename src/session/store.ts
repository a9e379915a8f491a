// Where sessions rest: an embedded SQLite file (node:sqlite, built into Node 24) so sessions survive a restart,
// or memory for throw-away setups. The store only sees opaque keys and sealed blobs: the key is a hash of the
// session id (the database alone cannot be turned into cookies) and the data is encrypted by the caller.
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';

export interface StoredSession {
  key: string;
  site: string;
  expiresAt: number;
  /** The provider's session id (ID token "sid"), for signing out by sid. */
  sid?: string;
  data: Buffer;
}

export interface SessionStore {
  get(key: string): StoredSession | undefined;
  put(session: StoredSession): void;
  delete(key: string): void;
  /** Keys of the site's sessions with this provider sid (they are then deleted). */
  deleteBySid(site: string, sid: string): string[];
  /** Drops expired sessions. */
  sweep(now: number): void;
  close(): void;
}

export function openSessionStore(kind: 'sqlite' | 'memory', file: string): SessionStore {
  return kind === 'sqlite' ? new SqliteSessionStore(file) : new MemorySessionStore();
}

class SqliteSessionStore implements SessionStore {
  readonly #db: DatabaseSync;
  readonly #get: StatementSync;
  readonly #put: StatementSync;
  readonly #delete: StatementSync;
  readonly #bySid: StatementSync;
  readonly #sweep: StatementSync;

  constructor(file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    this.#db = new DatabaseSync(file);
    fs.chmodSync(file, 0o600);
    // WAL: readers never wait for the writer; NORMAL sync is durable enough for sessions (a crash loses at most the last commits).
    this.#db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 2000;
      CREATE TABLE IF NOT EXISTS sessions (key TEXT PRIMARY KEY, site TEXT NOT NULL, expires_at INTEGER NOT NULL, sid TEXT, data BLOB NOT NULL);
      CREATE INDEX IF NOT EXISTS sessions_sid ON sessions (site, sid);
      CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at);`);
    this.#get = this.#db.prepare('SELECT key, site, expires_at, sid, data FROM sessions WHERE key = ?');
    this.#put = this.#db.prepare('INSERT OR REPLACE INTO sessions (key, site, expires_at, sid, data) VALUES (?, ?, ?, ?, ?)');
    this.#delete = this.#db.prepare('DELETE FROM sessions WHERE key = ?');
    this.#bySid = this.#db.prepare('DELETE FROM sessions WHERE site = ? AND sid = ? RETURNING key');
    this.#sweep = this.#db.prepare('DELETE FROM sessions WHERE expires_at < ?');
  }

  get(key: string): StoredSession | undefined {
    const row = this.#get.get(key) as { key: string; site: string; expires_at: number; sid: string | null; data: Uint8Array } | undefined;
    if (!row) return undefined;
    return { key: row.key, site: row.site, expiresAt: row.expires_at, sid: row.sid ?? undefined, data: Buffer.from(row.data) };
  }

  put(s: StoredSession): void { this.#put.run(s.key, s.site, s.expiresAt, s.sid ?? null, s.data); }
  delete(key: string): void { this.#delete.run(key); }
  deleteBySid(site: string, sid: string): string[] { return (this.#bySid.all(site, sid) as { key: string }[]).map((r) => r.key); }
  sweep(now: number): void { this.#sweep.run(now); }
  close(): void { if (this.#db.isOpen) this.#db.close(); }
}

class MemorySessionStore implements SessionStore {
  readonly #rows = new Map<string, StoredSession>();
  get(key: string) { return this.#rows.get(key); }
  put(s: StoredSession) { this.#rows.set(s.key, s); }
  delete(key: string) { this.#rows.delete(key); }
  deleteBySid(site: string, sid: string) {
    const keys = [...this.#rows.values()].filter((s) => s.site === site && s.sid === sid).map((s) => s.key);
    for (const key of keys) this.#rows.delete(key);
    return keys;
  }
  sweep(now: number) { for (const [key, s] of this.#rows) if (s.expiresAt < now) this.#rows.delete(key); }
  close() { this.#rows.clear(); }
}
