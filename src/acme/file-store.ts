// The local ACME store: the [acme] storage folder shared by the processes of one machine (storage.ts: versioned
// certificate folders, lock.ts: lock files, challenges.ts: token files, account.ts: the account key file).
import fs from 'node:fs';
import type { AcmeConfig } from '../config/model.ts';
import type { KeyPair } from '../tls/certificate-store.ts';
import { loadOrCreateAccountKey, retireAccountKey } from './account.ts';
import { ChallengeStore } from './challenges.ts';
import { tryLock } from './lock.ts';
import { CertStorage, type CertMeta, type StoredCert } from './storage.ts';
import type { AccountKeys, AcmeStore } from './store.ts';
import { watchFolder } from './watch.ts';

export class FileAcmeStore implements AcmeStore {
  readonly backend = 'local';
  readonly where: string;
  readonly storage: CertStorage;
  readonly challenges: ChallengeStore;
  readonly accountKeys: AccountKeys;

  constructor(config: Pick<AcmeConfig, 'storageDir' | 'accountKeyFile'>) {
    this.where = config.storageDir;
    this.storage = new CertStorage(config.storageDir);
    this.challenges = new ChallengeStore(config.storageDir);
    this.accountKeys = {
      load: () => loadOrCreateAccountKey(config.accountKeyFile),
      retire: async (refused: string) => retireAccountKey(config.accountKeyFile, refused),
    };
  }

  async read(domain: string): Promise<StoredCert> {
    return this.storage.read(domain);
  }

  async write(domain: string, pair: KeyPair, meta: CertMeta): Promise<void> {
    this.storage.write(domain, pair, meta);
  }

  async readMeta(domain: string): Promise<CertMeta | undefined> {
    return this.storage.readMeta(domain);
  }

  async writeMeta(meta: CertMeta): Promise<void> {
    this.storage.writeMeta(meta);
  }

  async lock(domain: string): Promise<(() => Promise<void>) | undefined> {
    const release = tryLock(this.storage.dir, domain);
    return release && (async () => release());
  }

  async domains(): Promise<string[]> {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(this.storage.dir, { withFileTypes: true });
    } catch {
      return [];
    }
    return entries
      .filter((e) => e.isDirectory() && e.name !== 'locks' && e.name !== 'challenges')
      .map((e) => e.name)
      .filter((name) => this.storage.read(name).state !== 'missing')
      .sort();
  }

  watch(domain: string, onChange: () => void): () => void {
    return watchFolder(this.storage.domainDir(domain), onChange);
  }

  sweep(): string[] {
    return this.challenges.sweep();
  }

  async whenReady(): Promise<boolean> {
    return true;
  }

  health(): undefined {
    return undefined;
  }

  onHealth(): void {}

  async close(): Promise<void> {}
}
