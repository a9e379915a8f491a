// `gatehouse import nginx.conf [oauth2-proxy.cfg …] --out DIR`: translate an nginx + oauth2-proxy setup. The result
// is written to a temporary folder beside DIR, checked as `gatehouse check` would, and only then renamed into place:
// DIR holds the whole import or is left as it was.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.ts';
import { ConfigError, formatProblem } from '../config/problems.ts';
import { NginxSyntaxError, readNginxConfig } from '../import/nginx-parse.ts';
import { hasProxyEnvironment, ProxyConfigError, readOAuth2ProxyConfig } from '../import/oauth2-proxy.ts';
import { formatSource } from '../import/toml-writer.ts';
import { translate } from '../import/translate.ts';

export const IMPORT_USAGE =
  'usage: gatehouse import NGINX_CONF [OAUTH2_PROXY_CFG …] --out DIR [--force] [--allow-partial]\n';

export function importCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): number {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        out: { type: 'string', short: 'o' },
        force: { type: 'boolean', default: false },
        'allow-partial': { type: 'boolean', default: false },
      },
    });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${IMPORT_USAGE}`);
    return 64;
  }
  const [nginxFile, ...cfgFiles] = parsed.positionals;
  const out = parsed.values.out;
  if (!nginxFile || !out) {
    process.stderr.write(IMPORT_USAGE);
    return 64;
  }
  const outDir = path.resolve(out);
  if (!parsed.values.force && !isEmptyOrMissing(outDir)) {
    process.stderr.write(`${outDir} is not empty: nothing written (--force replaces it)\n`);
    return 2;
  }

  let result;
  try {
    const nginx = readNginxConfig(nginxFile);
    const cfgs =
      cfgFiles.length > 0
        ? cfgFiles.map((file) => readOAuth2ProxyConfig(file, env))
        : hasProxyEnvironment(env)
          ? [readOAuth2ProxyConfig(undefined, env)]
          : [];
    result = translate(nginx, cfgs, { prefix: path.dirname(path.resolve(nginx.file)) });
  } catch (error) {
    if (error instanceof NginxSyntaxError || error instanceof ProxyConfigError) {
      process.stderr.write(`${error.message}\nnothing written\n`);
      return 2;
    }
    throw error;
  }

  for (const f of result.refused) process.stderr.write(`${formatSource(f.from)}: ${f.name}: ${f.why}\n`);
  const partial = parsed.values['allow-partial'];
  if (result.refused.length > 0 && !partial) {
    process.stderr.write(
      `${result.refused.length} directive${result.refused.length === 1 ? '' : 's'} or option${result.refused.length === 1 ? '' : 's'} without an equivalent: nothing written (--allow-partial writes the rest)\n`,
    );
    return 1;
  }

  const staging = path.join(
    path.dirname(outDir),
    `.${path.basename(outDir)}.import-${crypto.randomBytes(6).toString('hex')}`,
  );
  try {
    for (const file of result.files) {
      const target = path.join(staging, file.name);
      fs.mkdirSync(staging, { recursive: true });
      // The secrets folder is the owner's alone, like the secret files in it (0600).
      fs.mkdirSync(path.dirname(target), { recursive: true, mode: file.mode === 0o600 ? 0o700 : 0o755 });
      fs.writeFileSync(target, file.text, { mode: file.mode ?? 0o644, flag: 'wx' });
    }
    let checked = 'gatehouse check: configuration is valid';
    try {
      loadConfig(staging, env);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      for (const p of error.problems)
        process.stderr.write(`${formatProblem({ ...p, file: p.file.replace(staging, outDir) })}\n`);
      if (!partial) {
        process.stderr.write(
          `gatehouse check refuses the result (${error.problems.length} problem${error.problems.length === 1 ? '' : 's'}): nothing written (--allow-partial writes it anyway)\n`,
        );
        return 2;
      }
      checked = `gatehouse check: ${error.problems.length} problem${error.problems.length === 1 ? '' : 's'} to fix`;
    }
    replaceFolder(staging, outDir);
    process.stdout.write(
      `${outDir}: ${result.files.map((f) => f.name).join(', ')} (${checked}${result.refused.length ? `; ${result.refused.length} left out` : ''})\n`,
    );
    return 0;
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

function isEmptyOrMissing(dir: string): boolean {
  try {
    return fs.readdirSync(dir).length === 0;
  } catch (error) {
    // A file where the folder should be is "not empty": never replaced without --force.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return true;
    if ((error as NodeJS.ErrnoException).code === 'ENOTDIR') return false;
    throw error;
  }
}

/** Puts the staged folder at `dir`: rename(2) for each step, the old contents removed only once the new are there. */
function replaceFolder(staged: string, dir: string): void {
  if (!fs.existsSync(dir)) {
    fs.renameSync(staged, dir);
    return;
  }
  const old = `${staged}.old`;
  fs.renameSync(dir, old);
  try {
    fs.renameSync(staged, dir);
  } catch (error) {
    fs.renameSync(old, dir);
    throw error;
  }
  fs.rmSync(old, { recursive: true, force: true });
}
