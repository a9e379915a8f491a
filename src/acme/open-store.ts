// The ACME store [store] backend names: the [acme] storage folder of this machine, or Redis shared by every instance.
import type { Config } from '../config/model.ts';
import { FileAcmeStore } from './file-store.ts';
import { RedisAcmeStore } from './redis-store.ts';
import type { AcmeStore } from './store.ts';

export function openAcmeStore(config: Pick<Config, 'acme' | 'store'>): AcmeStore {
  return config.store.backend === 'redis' ? new RedisAcmeStore(config.store) : new FileAcmeStore(config.acme);
}
