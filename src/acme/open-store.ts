// The ACME store [store] backend names: the [acme] storage folder of this machine, or Redis shared by every instance.
import type { Config } from '../config/model.ts';
import type { RedisConnections } from '../store/redis.ts';
import { FileAcmeStore } from './file-store.ts';
import { RedisAcmeStore } from './redis-store.ts';
import type { AcmeStore } from './store.ts';

/** `redis`: the process's Redis connections to use (lent: the store leaves them open); else it opens its own. */
export function openAcmeStore(config: Pick<Config, 'acme' | 'store'>, redis?: RedisConnections): AcmeStore {
  return config.store.backend === 'redis'
    ? new RedisAcmeStore(config.store, redis ? { redis } : {})
    : new FileAcmeStore(config.acme);
}
