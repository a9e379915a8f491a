// Where ACME keeps what it shares between Gatehouse processes: certificates and their keys, meta (what `certs list`
// shows), the order lock per domain, HTTP-01 tokens and the account key. [store] backend chooses: "local" = the
// [acme] storage folder (file-store.ts, processes of one machine), "redis" = Redis shared by every instance
// (redis-store.ts), as Caddy's certmagic.Storage lets nodes share certificates, locks and challenge tokens.
import type { StoreHealth } from '../store/redis.ts';
import type { KeyPair } from '../tls/certificate-store.ts';
import type { CertMeta, StoredCert } from './storage.ts';

/** HTTP-01 tokens published while an order runs; get() answers any process's token. */
export interface ChallengeTokens {
  add(token: string, keyAuthorization: string): void | Promise<void>;
  remove(token: string): void | Promise<void>;
  get(token: string): string | undefined | Promise<string | undefined>;
}

/** The ACME account key: made once for everybody sharing the store, then reused. */
export interface AccountKeys {
  load(): Promise<string>;
  /** Moves a key the CA refuses for good aside (never deleted), unless another process replaced it already; says where. */
  retire(refusedKey: string): Promise<string | undefined>;
}

export interface AcmeStore {
  readonly backend: 'local' | 'redis';
  /** Where it is, for messages: the folder, or the Redis key prefix. */
  readonly where: string;
  readonly challenges: ChallengeTokens;
  readonly accountKeys: AccountKeys;
  /** The stored pair, checked (parses, key matches). Rejects when the store cannot be reached. */
  read(domain: string): Promise<StoredCert>;
  /** Stores a new pair and its meta; the caller holds the domain's lock. Every process watching learns of it. */
  write(domain: string, pair: KeyPair, meta: CertMeta): Promise<void>;
  readMeta(domain: string): Promise<CertMeta | undefined>;
  writeMeta(meta: CertMeta): Promise<void>;
  /** The domain's order lock: a release function, or undefined when another process holds it. */
  lock(domain: string): Promise<(() => Promise<void>) | undefined>;
  /** Every domain with something stored. */
  domains(): Promise<string[]>;
  /** Calls onChange when another process stored a new certificate for domain (or the store came back). */
  watch(domain: string, onChange: () => void): () => void;
  /** Removes what stopped orders left behind; returns what it removed (the Redis tokens expire by themselves). */
  sweep(): string[];
  /** Resolves true once the store answers, false after timeoutMs. */
  whenReady(timeoutMs: number): Promise<boolean>;
  /** The shared store's connection health (/ready); undefined for the local folder. */
  health(): StoreHealth | undefined;
  onHealth(listener: (health: StoreHealth) => void): void;
  close(): Promise<void>;
}
