// ACME tests start Gatehouse the way `gatehouse serve` does with ACME (load → build → prepareAcme → listen → startAcme)
// (load → build → prepareAcme → listen → startAcme), and collects its log lines for assertions.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { prepareAcme, startAcme } from '../../src/acme/start.ts';
import type { AcmeManager, AcmeOptions } from '../../src/acme/manager.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { startListeners, type Listening } from '../../src/runtime/listeners.ts';
import { buildRuntime } from '../../src/runtime/runtime.ts';

/** acme-client polling fast enough for Pebble (its default first wait is 5 s). */
export const FAST_POLL = { backoffMin: 50, backoffMax: 500, backoffAttempts: 30 };

/** Writes gatehouse.toml and sites/<name>.toml into a new temp folder; returns the folder. */
export function writeConfig(main: string, sites: Record<string, string>, dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-'))): string {
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

export async function startGatehouse(configDir: string, acmeOptions: AcmeOptions = { poll: FAST_POLL }): Promise<Gatehouse> {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({ write(chunk, _encoding, done) { for (const line of String(chunk).split('\n')) if (line) { lines.push(JSON.parse(line)); if (process.env.GATEHOUSE_TEST_LOG) process.stderr.write(`${line}\n`); } done(); } });
  const config = loadConfig(configDir);
  const runtime = buildRuntime(config, createLogger({ level: 'info', format: 'json' }, sink));
  const acme = await prepareAcme(runtime, acmeOptions);
  const listening = await startListeners(runtime);
  if (acme) startAcme(acme, listening);
  return {
    listening,
    ...(acme ? { acme } : {}),
    httpsPort: listening.https[0]!.port,
    logs: () => lines,
    stop: async () => { await acme?.stop(); await listening.stop(1000); },
  };
}
