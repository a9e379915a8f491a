// The session store [store] and [session] name: the local SQLite file (or memory), or Redis shared by every instance.
import type { Config } from '../config/model.ts';
import type { RedisConnections } from '../store/redis.ts';
import { openSessionStore, type SessionStore } from './store.ts';

/**
 * `redis`: the process's Redis connections to use (lent: the store leaves them open); else it opens its own. The Redis
 * client is loaded only by a configuration that uses it (V8 never unloads a module).
 */
export async function openConfiguredStore(
  config: Pick<Config, 'store' | 'session'>,
  redis?: RedisConnections,
): Promise<SessionStore> {
  if (config.store.backend !== 'redis') return openSessionStore(config.session.store, config.session.file);
  const { RedisSessionStore } = await import('./redis-store.ts');
  return new RedisSessionStore(redis ?? (await import('../store/redis.ts')).connectRedis(config.store));
}

/** Whether two configurations name the same store (a reload keeps the open one). */
export function sameStore(a: Pick<Config, 'store' | 'session'>, b: Pick<Config, 'store' | 'session'>): boolean {
  if (a.store.backend === 'redis' || b.store.backend === 'redis')
    return JSON.stringify(a.store) === JSON.stringify(b.store);
  return a.session.store === b.session.store && a.session.file === b.session.file;
}
