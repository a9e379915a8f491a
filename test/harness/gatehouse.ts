// Starts a real Gatehouse in the test's process, the way `gatehouse serve` does, with the log captured in memory so
// tests can match request ids against log lines. serveFolder() is the one way every test helper starts it
// (gatehouse-acme.ts and gatehouse-auth.ts write their own config shapes, then call it); startGatehouse() below
// writes a config with loopback port-0 listeners for the core tests.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import type { AcmeManager, AcmeOptions } from '../../src/acme/manager.ts';
import type { FetchLike } from '../../src/auth/oidc/client.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createGatehouse, type Gatehouse } from '../../src/runtime/gatehouse.ts';
import type { Listening } from '../../src/http/listeners.ts';
import type { Runtime } from '../../src/http/runtime.ts';
import { WAIT_MS } from './wait.ts';

export interface Served {
  gatehouse: Gatehouse;
  /** The runtime of the configuration being served (a reload replaces it). */
  readonly runtime: Runtime;
  listening: Listening;
  readonly acme?: AcmeManager;
  /** Every log line so far, parsed (set GATEHOUSE_TEST_LOG=1 to see them on stderr as well). */
  logs: Record<string, unknown>[];
  /** Stops ACME, then the listeners (1 s grace). */
  stop(): Promise<void>;
}

/** load → createGatehouse → start for one config folder, as `gatehouse serve` does. */
export async function serveFolder(
  dir: string,
  options: { logLevel?: 'debug' | 'info'; fetch?: FetchLike; acme?: AcmeOptions } = {},
): Promise<Served> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) {
        if (!line) continue;
        logs.push(JSON.parse(line));
        if (process.env.GATEHOUSE_TEST_LOG) process.stderr.write(`${line}\n`);
      }
      done();
    },
  });
  const log = createLogger({ level: options.logLevel ?? 'info', format: 'json' }, sink);
  const gatehouse = await createGatehouse(loadConfig(dir), { log, fetch: options.fetch, acme: options.acme }).start();
  return {
    gatehouse,
    get runtime() {
      return gatehouse.runtime;
    },
    listening: gatehouse,
    get acme() {
      return gatehouse.acme;
    },
    logs,
    stop: () => gatehouse.stop(1_000),
  };
}

export interface TestGatehouse extends Listening {
  dir: string;
  port: number;
  httpPort?: number;
  logs: Record<string, unknown>[];
  /** Resolves with the first log line that matches; access-log lines are written when the response has closed, a moment after the client has it. */
  logLine(matches: (line: Record<string, unknown>) => boolean, what?: string): Promise<Record<string, unknown>>;
}

/** Writes gatehouse.toml and sites/<name>.toml into a temp folder; `main` is appended to a loopback listener block. */
export function writeConfig(
  files: { main?: string; sites: Record<string, string>; http?: boolean },
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-cfg-')),
): string {
  const main = files.main ?? '';
  // Loopback port-0 listeners unless the test names its own.
  const ownListen = (table: string) => new RegExp(`^\\[${table}\\]\\n(?:(?!\\[).*\\n)*listen\\s*=`, 'm').test(main);
  const listeners = `[https]\n${ownListen('https') ? '' : 'listen = ["127.0.0.1:0"]\n'}${files.http ? `[http]\n${ownListen('http') ? '' : 'listen = ["127.0.0.1:0"]\n'}` : ''}`;
  fs.writeFileSync(path.join(dir, 'gatehouse.toml'), mergeMain(listeners, main));
  fs.mkdirSync(path.join(dir, 'sites'), { recursive: true });
  for (const [name, text] of Object.entries(files.sites))
    fs.writeFileSync(path.join(dir, 'sites', `${name}.toml`), text);
  return dir;
}

/** Lets a test add keys to [https]/[http] without declaring the table twice; top-level keys stay before any table. */
function mergeMain(listeners: string, main: string): string {
  let text = listeners;
  const rest = main.replace(/^\[(https|http)\]\n((?:(?!\[).*\n?)*)/gm, (_all, table: string, body: string) => {
    text = text.replace(`[${table}]\n`, `[${table}]\n${body}`);
    return '';
  });
  const firstTable = rest.search(/^\[/m);
  const preamble = firstTable < 0 ? rest : rest.slice(0, firstTable);
  return `${preamble}${text}${firstTable < 0 ? '' : rest.slice(firstTable)}`;
}

export async function startGatehouse(t: TestContext, files: Parameters<typeof writeConfig>[0]): Promise<TestGatehouse> {
  const dir = writeConfig(files);
  const { listening, logs, stop } = await serveFolder(dir, { logLevel: 'debug' });
  t.after(stop);
  const logLine = async (matches: (line: Record<string, unknown>) => boolean, what = 'a matching log line') => {
    for (
      const deadline = Date.now() + WAIT_MS;
      Date.now() < deadline;
      await new Promise((resolve) => setTimeout(resolve, 10))
    ) {
      const found = logs.find(matches);
      if (found) return found;
    }
    throw new Error(`no log line: ${what}\n${logs.map((line) => JSON.stringify(line)).join('\n')}`);
  };
  return Object.assign(listening, {
    dir,
    port: listening.https[0]!.port,
    httpPort: listening.http[0]?.port,
    logs,
    logLine,
  });
}

/** A site file with one route to `upstream` and the given extra TOML. */
export function siteToml(
  names: string[],
  cert: { certFile: string; keyFile: string },
  upstream: string,
  extra = '',
  route = '',
): string {
  return `server_names = ${JSON.stringify(names)}
${extra}
[tls]
cert = ${JSON.stringify(cert.certFile)}
key = ${JSON.stringify(cert.keyFile)}

[[routes]]
path = "/"
upstream = "${upstream}"
${route}
`;
}

/** A site file whose one route goes to the [upstreams.app] group of `upstream`, with extra group and route keys. */
export function groupSiteToml(
  cert: { certFile: string; keyFile: string },
  upstream: string,
  group = '',
  routes = '',
): string {
  return `server_names = ["app.test"]
[tls]
cert = ${JSON.stringify(cert.certFile)}
key = ${JSON.stringify(cert.keyFile)}
[upstreams.app]
servers = ["${upstream}"]
${group}
[[routes]]
path = "/"
upstream = "app"
${routes}`;
}
