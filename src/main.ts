#!/usr/bin/env node
// Process entry: command-line dispatch only.
import cluster from 'node:cluster';
import { isSea } from 'node:sea';
import { parseArgs } from 'node:util';
import { check } from './cli/check.ts';
import { HELP } from './cli/help.ts';
import { serve } from './cli/serve.ts';
import { version } from './cli/version.ts';

async function main(argv: string[]): Promise<number> {
  // import has its own options (--out, --force, --allow-partial) and is imported when used.
  if (argv[0] === 'import') return (await import('./cli/import.ts')).importCommand(argv.slice(1));
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c', default: 'config' },
        port: { type: 'string', short: 'p' },
        upstream: { type: 'string' },
        'print-config': { type: 'boolean' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${HELP}`);
    return 64;
  }
  const [command = 'serve', ...rest] = parsed.positionals;
  if (parsed.values.help || command === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  // certs and demo are imported when used: `serve` then never loads acme-client, oidc-provider or koa (memory, start-up).
  if (command === 'certs')
    return (await import('./cli/certs.ts')).certs(parsed.values.config, rest, undefined, parsed.values.out);
  if (parsed.values.out !== undefined) {
    process.stderr.write(`--out is an option of certs export (and import)\n\n${HELP}`);
    return 64;
  }
  const demoOnly = (['port', 'upstream', 'print-config'] as const).find((o) => parsed.values[o] !== undefined);
  if (demoOnly && command !== 'demo') {
    process.stderr.write(`--${demoOnly} is an option of demo only\n\n${HELP}`);
    return 64;
  }
  if (rest.length > 0) {
    process.stderr.write(`unexpected argument: ${rest[0]}\n\n${HELP}`);
    return 64;
  }
  switch (command) {
    case 'serve':
      return serve(parsed.values.config);
    case 'check':
      return check(parsed.values.config);
    case 'demo': {
      const { demo, DEMO_PORT, parseUpstream, printConfig } = await import('./cli/demo.ts');
      if (parsed.values['print-config']) {
        if (parsed.values.upstream !== undefined || parsed.values.port !== undefined) {
          process.stderr.write('--print-config prints what the last demo wrote; it takes no --upstream or --port\n');
          return 64;
        }
        return printConfig();
      }
      const upstream = parsed.values.upstream === undefined ? undefined : parseUpstream(parsed.values.upstream);
      if (upstream instanceof Error) {
        process.stderr.write(`${upstream.message}\n`);
        return 2;
      }
      const port = Number(parsed.values.port ?? DEMO_PORT);
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        process.stderr.write(`--port takes a port number, got ${parsed.values.port}\n`);
        return 64;
      }
      return demo(undefined, port, upstream);
    }
    case 'version':
      process.stdout.write(`${version()}\n`);
      return 0;
    default:
      process.stderr.write(`unknown command: ${command}\n\n${HELP}`);
      return 64;
  }
}

/**
 * The command-line arguments. The single executable has no script path, so Node repeats argv[0] as argv[1]
 * (https://nodejs.org/docs/latest-v24.x/api/single-executable-applications.html): `./gatehouse serve` gives
 * [execPath, './gatehouse', 'serve']. node:cluster forks a worker as `execPath <exec> ...args` (runtime/worker-supervision.ts sets
 * exec), which the executable sees as [execPath, execPath, exec, ...args]: a worker skips three entries, whatever
 * path, PATH lookup or symlink started the primary.
 */
function commandLine(): string[] {
  return process.argv.slice(isSea() && cluster.isWorker ? 3 : 2);
}

// No top-level await: the single executable runs a CommonJS bundle of this file.
void main(commandLine()).then((code) => {
  process.exitCode = code;
  // A command that returns has finished. A cluster worker's channel to the primary would keep it alive, neither
  // serving nor exiting, and the primary would never learn that it failed.
  if (cluster.isWorker) process.exit();
});
