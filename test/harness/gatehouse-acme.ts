// ACME tests write a config of their own and start Gatehouse the way `gatehouse serve` does (serveFolder), with
// acme-client polling Pebble fast.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AcmeManager, AcmeOptions } from '../../src/acme/manager.ts';
import type { Listening } from '../../src/http/listeners.ts';
import { serveFolder } from './gatehouse.ts';

/** acme-client polling fast enough for Pebble (its default first wait is 5 s). */
export const FAST_POLL = { backoffMin: 50, backoffMax: 500, backoffAttempts: 30 };

/** Writes gatehouse.toml and sites/<name>.toml into a new temp folder; returns the folder. */
export function writeConfig(
  main: string,
  sites: Record<string, string>,
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-')),
): string {
  fs.mkdirSync(path.join(dir, 'sites'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'gatehouse.toml'), main);
  for (const [name, text] of Object.entries(sites)) fs.writeFileSync(path.join(dir, 'sites', `${name}.toml`), text);
  return dir;
}

export interface Gatehouse {
  listening: Listening;
  acme?: AcmeManager;
  httpsPort: number;
  /** Log lines so far, parsed. */
  logs(): Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

export async function startGatehouse(
  configDir: string,
  acmeOptions: AcmeOptions = { poll: FAST_POLL },
): Promise<Gatehouse> {
  const { listening, acme, logs, stop } = await serveFolder(configDir, { acme: acmeOptions });
  return { listening, ...(acme ? { acme } : {}), httpsPort: listening.https[0]!.port, logs: () => logs, stop };
}
