// The Redis (or Valkey) connections of a process with [store] backend = "redis": one for commands, one for pub/sub
// (a subscribed connection can issue nothing else). Nothing a request waits for may block: commands fail after
// command_timeout, and none is queued while the connection is down (enableOfflineQueue off, as oauth2-proxy's users
// learned the hard way: a queued command holds its request until Redis returns). The connections reconnect by
// themselves with a capped backoff; health says since when they are up or degraded (/ready). A process opens one
// pair (runtime/gatehouse.ts) and lends it to the session store and the ACME store: each borrower's close() drops
// only its own subscriptions and listeners.
import { Redis, type RedisOptions } from 'ioredis';
import type { StoreConfig } from '../config/model.ts';

type RedisStoreConfig = Extract<StoreConfig, { backend: 'redis' }>;

/** Reconnect after 50 ms, doubling up to 2 s, forever: Redis coming back is noticed within about 2 s. */
const RECONNECT_MIN_MS = 50;
const RECONNECT_MAX_MS = 2_000;
/** A connection attempt that takes longer is abandoned (and retried by the backoff). */
const CONNECT_TIMEOUT_MS = 2_000;
/** A connected Redis that stops answering (frozen, overloaded) is noticed by a PING this often. */
const PING_INTERVAL_MS = 1_000;

export interface StoreHealth {
  state: 'up' | 'degraded';
  /** ms since epoch of the last change of state. */
  since: number;
  /** Why it is degraded (the last connection error). */
  reason?: string;
}

export type MessageHandler = (message: string) => void;

/** What a store uses of the connections: its close() ends what it registered (and the connections when it owns them). */
export interface RedisConnections {
  readonly command: Redis;
  readonly subscriber: Redis;
  readonly prefix: string;
  readonly commandTimeoutMs: number;
  readonly graceMs: number;
  readonly health: StoreHealth;
  onHealth(listener: (health: StoreHealth) => void): () => void;
  subscribe(channel: string, handler: MessageHandler): () => void;
  publish(channel: string, message: string): Promise<boolean>;
  close(): Promise<void>;
}

export class RedisPair implements RedisConnections {
  /** Commands. Fails fast while disconnected. */
  readonly command: Redis;
  /** Pub/sub only; resubscribes after a reconnect. */
  readonly subscriber: Redis;
  readonly prefix: string;
  readonly commandTimeoutMs: number;
  readonly graceMs: number;
  #health: StoreHealth = { state: 'degraded', since: Date.now(), reason: 'connecting' };
  readonly #handlers = new Map<string, MessageHandler[]>();
  readonly #healthListeners: ((health: StoreHealth) => void)[] = [];
  #closed = false;
  #pingFailed = false;
  readonly #pinger: NodeJS.Timeout;

  constructor(config: RedisStoreConfig, name = 'gatehouse') {
    this.prefix = config.prefix;
    this.commandTimeoutMs = config.commandTimeoutMs;
    this.graceMs = config.graceMs;
    // Named (CLIENT LIST shows `<name>:cmd` and `<name>:sub`) so an operator can count them per process.
    this.command = new Redis({ ...redisOptions(config, `${name}:cmd`), enableOfflineQueue: false });
    // The subscriber may queue its SUBSCRIBEs until it first connects: no request waits on them.
    this.subscriber = new Redis({ ...redisOptions(config, `${name}:sub`), enableOfflineQueue: true });
    for (const connection of [this.command, this.subscriber]) {
      connection.on('ready', () => this.#update());
      connection.on('close', () => {
        this.#pingFailed = false;
        this.#update();
      });
      connection.on('end', () => this.#update());
      connection.on('error', (error: Error) => this.#update(error.message));
    }
    this.subscriber.on('message', (channel: string, message: string) => {
      for (const handler of this.#handlers.get(channel) ?? []) handler(message);
    });
    this.#pinger = setInterval(() => void this.#ping(), PING_INTERVAL_MS).unref();
  }

  /** Both connections ready. */
  get health(): StoreHealth {
    return this.#health;
  }

  /** listener learns every change between up and degraded (e.g. to look again at what was cached while down). */
  onHealth(listener: (health: StoreHealth) => void): () => void {
    this.#healthListeners.push(listener);
    return () => remove(this.#healthListeners, listener);
  }

  /** Runs handler for every message published on prefix + channel, by any instance, until the returned function is
   *  called (the channel stays subscribed). */
  subscribe(channel: string, handler: MessageHandler): () => void {
    const full = this.prefix + channel;
    const handlers = this.#handlers.get(full);
    if (handlers) handlers.push(handler);
    else {
      this.#handlers.set(full, [handler]);
      this.subscriber.subscribe(full).catch(() => {
        // Not connected yet: ioredis resubscribes every channel it was asked for once it connects.
      });
    }
    return () => remove(this.#handlers.get(full) ?? [], handler);
  }

  /** Publishes on prefix + channel; false when Redis did not take it. */
  async publish(channel: string, message: string): Promise<boolean> {
    try {
      await this.command.publish(this.prefix + channel, message);
      return true;
    } catch {
      return false;
    }
  }

  /** A view on these connections for one store: its close() drops its subscriptions and listeners, never the
   *  connections (their owner closes them). */
  borrow(): RedisConnections {
    return new Borrowed(this);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#pinger);
    await Promise.all(
      [this.command, this.subscriber].map((connection) =>
        connection.status === 'ready'
          ? connection.quit().catch(() => connection.disconnect())
          : connection.disconnect(),
      ),
    );
  }

  async #ping(): Promise<void> {
    if (this.command.status !== 'ready') return;
    try {
      await this.command.ping();
      this.#pingFailed = false;
      this.#update();
    } catch (error) {
      this.#pingFailed = true;
      this.#update(`no answer to PING: ${(error as Error).message}`);
    }
  }

  #update(reason?: string): void {
    if (this.#closed) return;
    const up = this.command.status === 'ready' && this.subscriber.status === 'ready' && !this.#pingFailed;
    const state = up ? 'up' : 'degraded';
    if (state === this.#health.state) {
      if (!up && reason) this.#health = { ...this.#health, reason };
      return;
    }
    this.#health = { state, since: Date.now(), ...(up ? {} : { reason: reason ?? 'connection closed' }) };
    for (const listener of this.#healthListeners) listener(this.#health);
  }
}

class Borrowed implements RedisConnections {
  readonly #pair: RedisPair;
  readonly #registered: (() => void)[] = [];
  constructor(pair: RedisPair) {
    this.#pair = pair;
  }
  get command() {
    return this.#pair.command;
  }
  get subscriber() {
    return this.#pair.subscriber;
  }
  get prefix() {
    return this.#pair.prefix;
  }
  get commandTimeoutMs() {
    return this.#pair.commandTimeoutMs;
  }
  get graceMs() {
    return this.#pair.graceMs;
  }
  get health() {
    return this.#pair.health;
  }
  onHealth(listener: (health: StoreHealth) => void): () => void {
    return this.#track(this.#pair.onHealth(listener));
  }
  subscribe(channel: string, handler: MessageHandler): () => void {
    return this.#track(this.#pair.subscribe(channel, handler));
  }
  publish(channel: string, message: string): Promise<boolean> {
    return this.#pair.publish(channel, message);
  }
  close(): Promise<void> {
    for (const end of this.#registered.splice(0)) end();
    return Promise.resolve();
  }
  #track(end: () => void): () => void {
    this.#registered.push(end);
    return end;
  }
}

function redisOptions(config: RedisStoreConfig, connectionName: string): RedisOptions {
  const { redis } = config;
  const tls = redis.tls ? { ...(redis.caPem ? { ca: [redis.caPem] } : {}) } : undefined;
  return {
    connectionName,
    ...(redis.sentinels.length > 0
      ? {
          sentinels: redis.sentinels,
          name: redis.masterName!,
          sentinelRetryStrategy: backoff,
          ...(tls ? { enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
        }
      : { host: redis.host, port: redis.port }),
    db: redis.db,
    ...(redis.username ? { username: redis.username } : {}),
    ...(redis.password ? { password: redis.password } : {}),
    ...(tls ? { tls } : {}),
    commandTimeout: config.commandTimeoutMs,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // A command sent on a connection that then breaks is failed, not resent: its request has moved on.
    maxRetriesPerRequest: 0,
    retryStrategy: backoff,
    // Errors reach the 'error' listener (health) instead of an unhandled rejection at start-up.
    lazyConnect: false,
  };
}

function remove<T>(list: T[], item: T): void {
  const at = list.indexOf(item);
  if (at >= 0) list.splice(at, 1);
}

function backoff(attempt: number): number {
  return Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(attempt, 10));
}

export function connectRedis(config: RedisStoreConfig, name?: string): RedisPair {
  return new RedisPair(config, name);
}
