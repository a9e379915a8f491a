// The systems under test and the upstreams they share. Each `start` writes its generated configuration into the
// run folder, starts the processes on the proxy core and resolves once the port accepts connections.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { caddyfile, nginxBackendConf, nginxProxyConf, SESSION_COOKIE, writeGatehouseConfig } from './configs.ts';
import { freePort, processTree, start, stop, waitForPort, type Proc } from './procs.ts';
import type { Scenario, SystemName } from './types.ts';
import { withV8Flags } from '../../src/runtime/v8-flags.ts';

const BENCH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = path.resolve(BENCH, '..');
const NGINX = fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';

/** The reference forwarders: the file in servers/ and, for undici-forwarder.ts, which Node server it runs on. */
const REFERENCE_SERVERS: Partial<Record<SystemName, [string, string?]>> = {
  'node-undici-https': ['undici-forwarder.ts', 'https'],
  'node-undici-h2compat': ['undici-forwarder.ts', 'http2'],
  'node-rawpool-https': ['rawpool-forwarder.ts'],
  'node-ownloop-tls': ['ownloop-tls.ts'],
};

export interface Running {
  port: number;
  /** The folder this start's configuration and state live in. */
  dir: string;
  procs: Proc[];
  /** Every pid whose CPU and memory count for this system (nginx master + workers, the auth service). */
  pids(): number[];
  /** SIGTERM, SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  dir: string;
  certDir: string;
  names: string[];
  upstreamPort: number;
  scenario: Scenario;
  gatehouseBinary?: string;
  /** Extra Node flags for the Node systems run from source (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Checkout whose src/ runs as gatehouse-baseline. */
  baselineRoot?: string;
  /** With gatehouseBinary: the baseline's own single executable, built from its checkout. */
  baselineBinary?: string;
  /** Node flags for `gatehouse` only (not the baseline), e.g. heap settings: they win over src/runtime/v8-flags.ts. */
  gatehouseNodeOptions?: string;
}

/** Which Debian package provides a missing peer; undefined when it is installed. */
export function missingPackage(system: SystemName): string | undefined {
  const has = (command: string) => {
    try {
      execFileSync('sh', ['-c', `command -v ${command} || test -x /usr/sbin/${command}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (system === 'caddy') return has('caddy') ? undefined : 'caddy';
  if (system === 'nginx' || system === 'nginx-auth') return has('nginx') ? undefined : 'nginx-light';
  return undefined;
}

export async function startSystem(system: SystemName, o: StartOptions): Promise<Running> {
  const dir = path.join(o.dir, system);
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const procs: Proc[] = [];
  const running: Running = {
    port,
    dir,
    procs,
    pids: () => procs.flatMap((proc) => processTree(proc.pid)),
    stop: async (graceMs?: number) => {
      for (const proc of procs.reverse()) await stop(proc, graceMs);
    },
  };
  try {
    if (system === 'gatehouse' || system === 'gatehouse-baseline') {
      const root = system === 'gatehouse' ? ROOT : o.baselineRoot;
      if (!root) throw new Error('gatehouse-baseline needs --baseline <checkout>');
      const siteToml = o.scenario.gatehouse?.siteToml;
      writeGatehouseConfig({
        dir,
        port,
        upstreamPort: o.upstreamPort,
        names: o.names,
        certDir: o.certDir,
        siteToml: typeof siteToml === 'function' ? await siteToml({ port, names: o.names }) : siteToml,
      });
      const extraFlags = system === 'gatehouse' ? (o.gatehouseNodeOptions?.split(/\s+/).filter(Boolean) ?? []) : [];
      const env = { ...process.env, ...o.scenario.gatehouse?.env };
      // From source, Gatehouse runs with the V8 flags the single executable carries (as the README says to run it).
      const binary = system === 'gatehouse' ? o.gatehouseBinary : o.baselineBinary;
      procs.push(
        binary
          ? start(system, 'proxy', binary, ['serve', '--config', dir], {
              env: { ...env, ...(extraFlags.length > 0 ? { NODE_OPTIONS: extraFlags.join(' ') } : {}) },
            })
          : start(
              system,
              'proxy',
              process.execPath,
              [
                ...withV8Flags([...extraFlags, ...(o.nodeArgs ?? [])]),
                path.join(root, 'src', 'main.ts'),
                'serve',
                '--config',
                dir,
              ],
              { env },
            ),
      );
    } else if (system in REFERENCE_SERVERS) {
      const [file, server] = REFERENCE_SERVERS[system]!;
      const options = {
        port,
        upstreamPort: o.upstreamPort,
        cert: path.join(o.certDir, `${o.names[0]}.crt`),
        key: path.join(o.certDir, `${o.names[0]}.key`),
        server,
      };
      procs.push(
        start(system, 'proxy', process.execPath, [
          ...(o.nodeArgs ?? []),
          path.join(BENCH, 'servers', file),
          JSON.stringify(options),
        ]),
      );
    } else if (system === 'nginx' || system === 'nginx-auth') {
      let authPort: number | undefined;
      if (system === 'nginx-auth') {
        authPort = await freePort();
        const auth = start('auth service', 'proxy', process.execPath, [
          path.join(BENCH, 'servers', 'auth.ts'),
          String(authPort),
          SESSION_COOKIE,
        ]);
        procs.push(auth);
        await waitForPort(auth, authPort);
      }
      fs.writeFileSync(
        path.join(dir, 'nginx.conf'),
        nginxProxyConf({ dir, port, upstreamPort: o.upstreamPort, names: o.names, certDir: o.certDir, authPort }),
      );
      procs.push(start(system, 'proxy', NGINX, nginxArgs(dir)));
    } else {
      fs.writeFileSync(
        path.join(dir, 'Caddyfile'),
        caddyfile({ port, upstreamPort: o.upstreamPort, names: o.names, certDir: o.certDir }),
      );
      // Caddy keeps state under XDG folders; keep it inside the run folder.
      const env = {
        ...process.env,
        XDG_DATA_HOME: path.join(dir, 'data'),
        XDG_CONFIG_HOME: path.join(dir, 'config'),
        HOME: dir,
      };
      procs.push(
        start('caddy', 'proxy', 'caddy', ['run', '--config', path.join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], {
          env,
        }),
      );
    }
    await waitForPort(procs.at(-1)!, port);
    return running;
  } catch (error) {
    await running.stop();
    throw error;
  }
}

export interface Backend {
  port: number;
  proc: Proc;
  acceptedConnections(): Promise<number | undefined>;
  stop(): Promise<void>;
}

/** The upstream on the client core: nginx (100 bytes at /, 1 MB at /1mb) or the Node WebSocket echo server. */
export async function startBackend(kind: Scenario['backend'], runDir: string): Promise<Backend> {
  const dir = path.join(runDir, `backend-${kind}`);
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  let proc: Proc;
  if (kind === 'nginx') {
    const big = path.join(dir, '1mb.bin');
    if (!fs.existsSync(big)) fs.writeFileSync(big, Buffer.alloc(1024 * 1024, 'x'));
    fs.writeFileSync(path.join(dir, 'nginx.conf'), nginxBackendConf(dir, port, big));
    proc = start('backend nginx', 'client', NGINX, nginxArgs(dir));
  } else {
    proc = start('backend ws-echo', 'client', process.execPath, [
      path.join(BENCH, 'servers', 'ws-echo.ts'),
      String(port),
    ]);
  }
  await waitForPort(proc, port);
  return {
    port,
    proc,
    async acceptedConnections() {
      if (kind !== 'nginx') return undefined;
      // A fresh connection each time (agent: false), so exactly one of the counted accepts is our own.
      const text = await new Promise<string>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: '/nginx_status', agent: false }, (res) => {
            let body = '';
            res
              .setEncoding('utf8')
              .on('data', (chunk: string) => {
                body += chunk;
              })
              .on('end', () => resolve(body));
          })
          .on('error', reject);
      });
      return Number(/\n\s*(\d+) \d+ \d+/.exec(text)?.[1]);
    },
    stop: () => stop(proc),
  };
}

/** nginx in the foreground with its prefix, config and error log in one run folder. */
function nginxArgs(dir: string): string[] {
  return ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log'), '-g', 'daemon off;'];
}
