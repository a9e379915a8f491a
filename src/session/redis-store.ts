// Sessions in Redis (or Valkey), shared by every Gatehouse instance on the same server and [store] prefix. The rows
// are what the local stores keep (a hash of the session id as key, the session sealed by the caller: the cookie
// secret never reaches Redis), one hash per session that Redis itself drops at the session's end (PEXPIREAT), plus
// a set per provider sid and per subject for logout. Every write that changes or ends a session is published, so
// every instance drops its cached copy at once. Scripts keep each change atomic and publish only what happened;
// they name keys they derive from the prefix, which standalone Redis and Sentinel allow (Redis Cluster does not).
// https://redis.io/docs/latest/develop/interact/programmability/eval-intro/
import { randomBytes } from 'node:crypto';
import { ReplyError } from 'ioredis';
import type { RedisConnections, StoreHealth } from '../store/redis.ts';
import { StoreUnavailableError, type SessionChange, type SessionStore, type StoredSession } from './store.ts';

const CHANNEL = 'sessions';

/** KEYS[1] the session hash, KEYS[2..n-1] its sid/sub sets, KEYS[n] its refresh lease. ARGV: site, expiresAt, sid,
 *  sub, version, data, channel, mode ("put" | "update" | "fenced"), lease owner, expected version, key. Saving ends the
 *  refresh lease, as a save does in the SQLite store. */
const WRITE = `
local mode = ARGV[8]
local lease = KEYS[#KEYS]
if mode ~= 'put' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
  if mode == 'fenced' then
    if redis.call('GET', lease) ~= ARGV[9] then return 0 end
    if redis.call('HGET', KEYS[1], 'v') ~= ARGV[10] then return 0 end
  end
end
redis.call('HSET', KEYS[1], 'site', ARGV[1], 'exp', ARGV[2], 'sid', ARGV[3], 'sub', ARGV[4], 'v', ARGV[5], 'data', ARGV[6])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
for i = 2, #KEYS - 1 do
  redis.call('SADD', KEYS[i], ARGV[11])
  if redis.call('PEXPIRETIME', KEYS[i]) < tonumber(ARGV[2]) then redis.call('PEXPIREAT', KEYS[i], ARGV[2]) end
end
redis.call('DEL', lease)
redis.call('PUBLISH', ARGV[7], 'changed ' .. ARGV[1] .. ' ' .. ARGV[11] .. ' ' .. ARGV[5])
return 1`;

/** Ends one session: ARGV prefix, channel, key, then (optional) the field and value it must still have. */
const END_ONE = `
local function finish(prefix, channel, key, field, value)
  local hash = prefix .. 'session:' .. key
  local site, sid, sub = unpack(redis.call('HMGET', hash, 'site', 'sid', 'sub'))
  if not site then return false end
  if field == 'sid' and sid ~= value then return false end
  if field == 'sub' and sub ~= value then return false end
  redis.call('DEL', hash, prefix .. 'lease:' .. key)
  if sid and sid ~= '' then redis.call('SREM', prefix .. 'sid:' .. site .. ':' .. sid, key) end
  if sub and sub ~= '' then redis.call('SREM', prefix .. 'sub:' .. site .. ':' .. sub, key) end
  redis.call('PUBLISH', prefix .. channel, 'ended ' .. site .. ' ' .. key)
  return true
end
`;

const DELETE = `${END_ONE}
if finish(ARGV[1], ARGV[2], ARGV[3]) then return 1 end
return 0`;

/** KEYS[1] a sid or sub set; ARGV prefix, channel, field, value. Returns the keys of the sessions ended. */
const DELETE_INDEXED = `${END_ONE}
local ended = {}
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if finish(ARGV[1], ARGV[2], key, ARGV[3], ARGV[4]) then table.insert(ended, key) end
end
redis.call('DEL', KEYS[1])
return ended`;

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

export class RedisSessionStore implements SessionStore {
  readonly kind = 'redis';
  readonly graceMs: number;
  readonly #redis: RedisConnections;
  readonly #prefix: string;

  constructor(redis: RedisConnections) {
    this.#redis = redis;
    this.#prefix = redis.prefix;
    this.graceMs = redis.graceMs;
  }

  async get(key: string): Promise<StoredSession | undefined> {
    const [site, exp, sid, sub, version, data] = await this.#run(
      this.#redis.command.hmgetBuffer(this.#session(key), 'site', 'exp', 'sid', 'sub', 'v', 'data'),
    );
    if (!site || !exp || !version || !data) return undefined;
    return {
      key,
      site: site.toString(),
      expiresAt: Number(exp),
      ...(sid?.length ? { sid: sid.toString() } : {}),
      ...(sub?.length ? { sub: sub.toString() } : {}),
      version: Number(version),
      data,
    };
  }

  async put(session: StoredSession): Promise<void> {
    await this.#write(session, 'put');
  }

  async update(session: StoredSession, fence?: { lease: string; expectedVersion: number }): Promise<boolean> {
    return (await this.#write(session, fence ? 'fenced' : 'update', fence)) === 1;
  }

  async delete(key: string): Promise<void> {
    await this.#run(this.#redis.command.eval(DELETE, 0, this.#prefix, CHANNEL, key));
  }

  deleteBySid(site: string, sid: string): Promise<string[]> {
    return this.#deleteIndexed(site, 'sid', sid);
  }

  deleteBySub(site: string, sub: string): Promise<string[]> {
    return this.#deleteIndexed(site, 'sub', sub);
  }

  async version(key: string): Promise<number | undefined> {
    const version = await this.#run(this.#redis.command.hget(this.#session(key), 'v'));
    return version === null ? undefined : Number(version);
  }

  async claimRefresh(key: string, _now: number, leaseMs: number): Promise<string | undefined> {
    const owner = randomBytes(16).toString('base64url');
    const taken = await this.#run(this.#redis.command.set(this.#lease(key), owner, 'PX', leaseMs, 'NX'));
    return taken === 'OK' ? owner : undefined;
  }

  async renewRefresh(key: string, owner: string, leaseMs: number): Promise<boolean> {
    return (await this.#run(this.#redis.command.eval(RENEW, 1, this.#lease(key), owner, leaseMs))) === 1;
  }

  async holdRefresh(key: string, until: number): Promise<void> {
    await this.#run(this.#redis.command.set(this.#lease(key), 'hold', 'PXAT', until));
  }

  async firstUse(id: string, until: number): Promise<boolean> {
    const key = `${this.#prefix}once:${id}`;
    return (await this.#run(this.#redis.command.set(key, '1', 'PXAT', Math.max(until, Date.now() + 1), 'NX'))) === 'OK';
  }

  /** Redis drops each session at its end (PEXPIREAT): nothing to sweep. */
  sweep(): void {}

  onChange(listener: (change: SessionChange) => void): () => void {
    return this.#redis.subscribe(CHANNEL, (message) => {
      const [kind, site, key, version] = message.split(' ');
      if ((kind !== 'changed' && kind !== 'ended') || !site || !key) return;
      listener({ kind, site, key, ...(version ? { version: Number(version) } : {}) });
    });
  }

  available(): boolean {
    return this.#redis.health.state === 'up';
  }

  health(): StoreHealth {
    return this.#redis.health;
  }

  onHealth(listener: (health: StoreHealth) => void): () => void {
    return this.#redis.onHealth(listener);
  }

  close(): Promise<void> {
    return this.#redis.close();
  }

  #write(
    s: StoredSession,
    mode: 'put' | 'update' | 'fenced',
    fence?: { lease: string; expectedVersion: number },
  ): Promise<unknown> {
    const keys = [
      this.#session(s.key),
      ...(s.sid ? [`${this.#prefix}sid:${s.site}:${s.sid}`] : []),
      ...(s.sub ? [`${this.#prefix}sub:${s.site}:${s.sub}`] : []),
      this.#lease(s.key),
    ];
    return this.#run(
      this.#redis.command.eval(
        WRITE,
        keys.length,
        ...keys,
        s.site,
        s.expiresAt,
        s.sid ?? '',
        s.sub ?? '',
        String(s.version),
        s.data,
        this.#prefix + CHANNEL,
        mode,
        fence?.lease ?? '',
        String(fence?.expectedVersion ?? ''),
        s.key,
      ),
    );
  }

  async #deleteIndexed(site: string, field: 'sid' | 'sub', value: string): Promise<string[]> {
    const index = `${this.#prefix}${field}:${site}:${value}`;
    const ended = await this.#run(
      this.#redis.command.eval(DELETE_INDEXED, 1, index, this.#prefix, CHANNEL, field, value),
    );
    return Array.isArray(ended) ? ended.map(String) : [];
  }

  #session(key: string): string {
    return `${this.#prefix}session:${key}`;
  }

  #lease(key: string): string {
    return `${this.#prefix}lease:${key}`;
  }

  /** A Redis that is down, frozen or slow is StoreUnavailableError; a script error stays what it is (a bug). */
  async #run<T>(command: Promise<T>): Promise<T> {
    try {
      return await command;
    } catch (error) {
      if (
        error instanceof ReplyError &&
        !/^(LOADING|BUSY|MASTERDOWN|READONLY|CLUSTERDOWN|TRYAGAIN)/.test((error as Error).message)
      )
        throw error;
      throw new StoreUnavailableError(`Redis: ${(error as Error).message}`, { cause: error });
    }
  }
}
