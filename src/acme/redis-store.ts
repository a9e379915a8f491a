// The ACME store in Redis (or Valkey), shared by every Gatehouse instance naming the same server and [store] prefix,
// after Caddy's storage plugins: one instance orders a domain's certificate while the others wait for its result,
// any instance answers the CA's HTTP-01 request, and every instance installs the new certificate once it is stored.
//   <prefix>acme:cert:<domain>       hash: chain, key (sealed), previous_chain, previous_key (the fallback)
//   <prefix>acme:meta:<domain>       what `gatehouse certs list` shows (JSON)
//   <prefix>acme:lock:<domain>       the order lock: an owner token, SET NX PX, renewed while the order runs
//   <prefix>acme:challenge:<token>   an HTTP-01 key authorization, with a TTL (a killed order's tokens expire)
//   <prefix>acme:account-key         the ACME account key (sealed)
//   <prefix>acme (channel)           "installed <domain> <serial>", published with the write
// Private keys are sealed with AES-256-GCM under a key derived from [store] encryption_key, bound to their key name
// (the same sealing as the sessions'): Redis, its backups and replicas never hold a usable private key.
import crypto from 'node:crypto';
import os from 'node:os';
import acme from 'acme-client';
import type { StoreConfig } from '../config/model.ts';
import { derivedKey, seal, unseal } from '../session/crypto.ts';
import { connectRedis, type RedisConnections, type StoreHealth } from '../store/redis.ts';
import type { KeyPair } from '../tls/certificate-store.ts';
import { CHALLENGE_TOKEN, STALE_CHALLENGE_MS } from './challenges.ts';
import { describe, type CertMeta, type StoredCert } from './storage.ts';
import type { AccountKeys, AcmeStore, ChallengeTokens } from './store.ts';

type RedisStoreConfig = Extract<StoreConfig, { backend: 'redis' }>;

const CHANNEL = 'acme';
/** A holder that dies (kill -9, power cut) stops renewing its lock: another instance takes over this long after. */
export const LOCK_TTL_MS = 10_000;

/** KEYS: cert hash, meta; ARGV: chain, sealed key, meta, channel, message. The pair it replaces is kept as the
 *  fallback; all in one script, so readers never see a chain without its key. */
const WRITE = `
local old = redis.call('HMGET', KEYS[1], 'chain', 'key')
if old[1] and old[2] and old[1] ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'previous_chain', old[1], 'previous_key', old[2])
end
redis.call('HSET', KEYS[1], 'chain', ARGV[1], 'key', ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1`;

/** Only the owner renews or releases its lock (https://redis.io/docs/latest/develop/use/patterns/distributed-locks/). */
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;
/** Moves the refused account key aside unless another instance already replaced it. */
const RETIRE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('RENAME', KEYS[1], KEYS[2]) return 1 end
return 0`;

export class RedisAcmeStore implements AcmeStore {
  readonly backend = 'redis';
  readonly where: string;
  readonly challenges: ChallengeTokens;
  readonly accountKeys: AccountKeys;
  readonly #redis: RedisConnections;
  readonly #key: crypto.KeyObject;
  readonly #prefix: string;
  readonly #lockTtlMs: number;
  readonly #watchers = new Map<string, Set<() => void>>();

  /** `redis`: the process's connections, lent (close() then leaves them open); without it the store opens its own. */
  constructor(config: RedisStoreConfig, options: { lockTtlMs?: number; redis?: RedisConnections } = {}) {
    if (!config.encryptionKey) throw new Error('[store] encryption_key is needed to keep ACME private keys in Redis');
    this.#redis = options.redis ?? connectRedis(config, 'gatehouse-acme');
    this.#prefix = `${config.prefix}acme:`;
    this.where = `Redis (keys ${this.#prefix}*)`;
    this.#key = derivedKey(config.encryptionKey, 'acme private keys');
    this.#lockTtlMs = options.lockTtlMs ?? LOCK_TTL_MS;
    this.challenges = new RedisChallenges(this.#redis, this.#prefix);
    this.accountKeys = {
      load: () => this.#loadAccountKey(),
      retire: (refused) => this.#retireAccountKey(refused),
    };
    this.#redis.subscribe(CHANNEL, (message) => {
      const [event, domain] = message.split(' ');
      if (event === 'installed' && domain) for (const changed of this.#watchers.get(domain) ?? []) changed();
    });
    // Back after an outage: what was published meanwhile never arrived, so every domain is looked at again.
    this.#redis.onHealth((health) => {
      if (health.state === 'up') for (const set of this.#watchers.values()) for (const changed of set) changed();
    });
  }

  async read(domain: string): Promise<StoredCert> {
    const fields = await this.#redis.command.hgetall(`${this.#prefix}cert:${domain}`);
    if (fields.chain === undefined) return { state: 'missing' };
    const current = this.#pair(domain, fields.chain, fields.key);
    if (current.state === 'ok' || fields.previous_chain === undefined) return current;
    const previous = this.#pair(domain, fields.previous_chain, fields.previous_key);
    const reason = current.state === 'corrupt' ? current.reason : 'missing';
    return previous.state === 'ok' ? { ...previous, problem: reason } : current;
  }

  async write(domain: string, pair: KeyPair, meta: CertMeta): Promise<void> {
    const info = describe(pair); // refuse to store anything we could not load again
    const sealed = seal(this.#key, Buffer.from(pair.keyPem), this.#aad(domain)).toString('base64');
    await this.#redis.command.eval(
      WRITE,
      2,
      `${this.#prefix}cert:${domain}`,
      `${this.#prefix}meta:${domain}`,
      pair.certPem,
      sealed,
      JSON.stringify(meta),
      this.#redis.prefix + CHANNEL,
      `installed ${domain} ${info.serial}`,
    );
  }

  async readMeta(domain: string): Promise<CertMeta | undefined> {
    const text = await this.#redis.command.get(`${this.#prefix}meta:${domain}`);
    try {
      const meta = text === null ? undefined : (JSON.parse(text) as CertMeta);
      return typeof meta === 'object' && meta !== null ? meta : undefined;
    } catch {
      return undefined;
    }
  }

  async writeMeta(meta: CertMeta): Promise<void> {
    await this.#redis.command.set(`${this.#prefix}meta:${meta.domain}`, JSON.stringify(meta));
  }

  async lock(domain: string): Promise<(() => Promise<void>) | undefined> {
    const key = `${this.#prefix}lock:${domain}`;
    const owner = `${os.hostname()} ${process.pid} ${crypto.randomBytes(12).toString('base64url')}`;
    if ((await this.#redis.command.set(key, owner, 'PX', this.#lockTtlMs, 'NX')) !== 'OK') return undefined;
    // Renewed while the order runs (a CA may ask to wait); a renewal that fails (Redis away) is tried again.
    const renewal = setInterval(
      () => void this.#redis.command.eval(RENEW, 1, key, owner, this.#lockTtlMs).catch(() => {}),
      Math.max(this.#lockTtlMs / 3, 100),
    ).unref();
    return async () => {
      clearInterval(renewal);
      // Not released (Redis away): it expires within the TTL.
      await this.#redis.command.eval(RELEASE, 1, key, owner).catch(() => {});
    };
  }

  async domains(): Promise<string[]> {
    const found = new Set<string>();
    let cursor = '0';
    do {
      const [next, keys] = await this.#redis.command.scan(cursor, 'MATCH', `${this.#prefix}cert:*`, 'COUNT', 200);
      for (const key of keys) found.add(key.slice(`${this.#prefix}cert:`.length));
      cursor = next;
    } while (cursor !== '0');
    return [...found].sort();
  }

  watch(domain: string, onChange: () => void): () => void {
    const set = this.#watchers.get(domain) ?? new Set();
    this.#watchers.set(domain, set.add(onChange));
    return () => set.delete(onChange);
  }

  sweep(): string[] {
    return []; // tokens expire by themselves
  }

  whenReady(timeoutMs: number): Promise<boolean> {
    if (this.#redis.command.status === 'ready') return Promise.resolve(true);
    return new Promise((resolve) => {
      const ready = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.#redis.command.off('ready', ready);
        resolve(false);
      }, timeoutMs);
      this.#redis.command.once('ready', ready);
    });
  }

  health(): StoreHealth {
    return this.#redis.health;
  }

  onHealth(listener: (health: StoreHealth) => void): void {
    this.#redis.onHealth(listener);
  }

  close(): Promise<void> {
    return this.#redis.close();
  }

  #aad(domain: string): string {
    return `${this.#prefix}cert:${domain}`;
  }

  #pair(domain: string, certPem: string, sealed: string | undefined): StoredCert {
    const keyPem =
      sealed === undefined ? undefined : unseal(this.#key, Buffer.from(sealed, 'base64'), this.#aad(domain));
    if (keyPem === undefined)
      return {
        state: 'corrupt',
        reason: `the private key of ${domain} in Redis does not decrypt with [store] encryption_key (another key on this instance?)`,
      };
    const pair = { certPem, keyPem: keyPem.toString() };
    try {
      return { state: 'ok', pair, info: describe(pair) };
    } catch (error) {
      return { state: 'corrupt', reason: `${domain} in Redis: ${(error as Error).message}` };
    }
  }

  async #loadAccountKey(): Promise<string> {
    const key = `${this.#prefix}account-key`;
    let blob = await this.#redis.command.get(key);
    if (blob === null) {
      // Made once for every instance: the first SET NX wins, the others read its key.
      const pem = (await acme.crypto.createPrivateEcdsaKey()).toString();
      await this.#redis.command.set(key, this.#sealAccountKey(pem), 'NX');
      blob = await this.#redis.command.get(key);
    }
    const pem = blob === null ? undefined : this.#openAccountKey(blob);
    if (pem === undefined)
      throw new Error(
        `the ACME account key in Redis (${key}) does not decrypt with [store] encryption_key: use the same key on every instance`,
      );
    return pem;
  }

  async #retireAccountKey(refused: string): Promise<string | undefined> {
    const key = `${this.#prefix}account-key`;
    const blob = await this.#redis.command.get(key);
    if (blob === null || this.#openAccountKey(blob) !== refused) return undefined;
    const retired = `${key}:deactivated-${new Date().toISOString().replace(/[-:]|\.\d{3}/g, '')}`;
    return (await this.#redis.command.eval(RETIRE, 2, key, retired, blob)) === 1 ? retired : undefined;
  }

  #sealAccountKey(pem: string): string {
    return seal(this.#key, Buffer.from(pem), `${this.#prefix}account-key`).toString('base64');
  }

  #openAccountKey(blob: string): string | undefined {
    return unseal(this.#key, Buffer.from(blob, 'base64'), `${this.#prefix}account-key`)?.toString();
  }
}

/** Tokens of this process's orders are answered from memory; any other instance's from Redis (the CA's request is
 *  the cold path: one GET). */
class RedisChallenges implements ChallengeTokens {
  readonly #own = new Map<string, string>();
  readonly #redis: RedisConnections;
  readonly #prefix: string;

  constructor(redis: RedisConnections, prefix: string) {
    this.#redis = redis;
    this.#prefix = `${prefix}challenge:`;
  }

  async add(token: string, keyAuthorization: string): Promise<void> {
    if (!CHALLENGE_TOKEN.test(token))
      throw new Error(`the CA sent a malformed challenge token: ${JSON.stringify(token)}`);
    this.#own.set(token, keyAuthorization);
    await this.#redis.command.set(this.#prefix + token, keyAuthorization, 'PX', STALE_CHALLENGE_MS);
  }

  async remove(token: string): Promise<void> {
    if (!this.#own.delete(token)) return;
    await this.#redis.command.del(this.#prefix + token).catch(() => {}); // else it expires
  }

  async get(token: string): Promise<string | undefined> {
    if (!CHALLENGE_TOKEN.test(token)) return undefined;
    return this.#own.get(token) ?? (await this.#redis.command.get(this.#prefix + token)) ?? undefined;
  }
}
