// `npm run build:binary`: dist/gatehouse, a Node 24 single executable application (SEA) with no Node on PATH needed.
// esbuild → one CommonJS bundle → `node --experimental-sea-config`
// makes the blob → postject injects it into a stripped copy of the pinned Node binary.
// https://nodejs.org/docs/latest-v24.x/api/single-executable-applications.html
// Not a `gatehouse` verb: main.ts never imports it, so it is not in the bundle.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { writeFileAtomic } from '../base/atomic-write.ts';
import { V8_FLAGS } from '../runtime/v8-flags.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BINARY = path.join(ROOT, 'dist', 'gatehouse');
/** Written next to the binary after a successful build: the input hash it was built from. */
export const STAMP = `${BINARY}.inputs-sha256`;
/** postject's documented sentinel; Node looks for this fuse to know a blob was injected. */
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/** Hash of everything the binary is made from: sources (this script among them), lockfile and package.json. */
export function inputsHash(): string {
  const hash = crypto.createHash('sha256');
  const files = [...listFiles(path.join(ROOT, 'src')), 'package.json', 'package-lock.json']
    .map((file) => path.relative(ROOT, path.resolve(ROOT, file)))
    .sort();
  for (const file of files)
    hash
      .update(`${file}\0`)
      .update(fs.readFileSync(path.join(ROOT, file)))
      .update('\0');
  return hash.digest('hex');
}

/** True when dist/gatehouse exists and was built from the current inputs. */
export function binaryIsFresh(): boolean {
  try {
    return fs.readFileSync(STAMP, 'utf8').trim() === inputsHash() && fs.statSync(BINARY).isFile();
  } catch {
    return false;
  }
}

export interface BuildResult {
  binary: string;
  bytes: number;
  bundleBytes: number;
  ms: number;
}

export async function buildBinary(log: (line: string) => void = () => {}): Promise<BuildResult> {
  if (Number(process.versions.node.split('.')[0]) < 24)
    throw new Error(`the SEA blob must be made by Node 24 (the Node it is injected into), got ${process.version}`);
  const started = Date.now();
  const hash = inputsHash();
  const dist = path.dirname(BINARY);
  fs.mkdirSync(dist, { recursive: true });
  const bundle = path.join(dist, 'gatehouse.cjs');
  const blob = path.join(dist, 'gatehouse.blob');
  const seaConfig = path.join(dist, 'sea-config.json');
  const work = `${BINARY}.building`;

  log('bundling src/main.ts with esbuild');
  await build(bundleOptions(bundle));
  writeFileAtomic(
    seaConfig,
    JSON.stringify(
      { main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, execArgv: V8_FLAGS },
      null,
      2,
    ),
  );
  log('making the SEA blob');
  // process.execPath is the pinned Node 24 inside npm scripts; a blob from another Node makes a binary that segfaults.
  execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { cwd: ROOT, stdio: 'pipe' });

  log('injecting into a stripped copy of the pinned node');
  const node = fs.realpathSync(path.join(ROOT, 'node_modules', 'node', 'bin', 'node'));
  fs.rmSync(work, { force: true });
  fs.copyFileSync(node, work);
  fs.chmodSync(work, 0o755);
  execFileSync('strip', [work], { stdio: 'pipe' });
  execFileSync(
    process.execPath,
    [
      path.join(ROOT, 'node_modules', 'postject', 'dist', 'cli.js'),
      work,
      'NODE_SEA_BLOB',
      blob,
      '--sentinel-fuse',
      FUSE,
    ],
    { stdio: 'pipe' },
  );
  fs.renameSync(work, BINARY);
  writeFileAtomic(STAMP, `${hash}\n`);
  return {
    binary: BINARY,
    bytes: fs.statSync(BINARY).size,
    bundleBytes: fs.statSync(bundle).size,
    ms: Date.now() - started,
  };
}

/**
 * esbuild's options for the bundle (test/binary/bundle.test.ts builds the same one to see what it carries). The
 * bundle carries every verb; `certs`, `demo` and ACME are imported when used (main.ts, runtime/acme.ts), and
 * esbuild keeps such a module and what only it imports in a function that runs at that import, so `serve` never
 * evaluates the demo's identity provider (oidc-provider, koa) nor acme-client.
 */
export function bundleOptions(outfile: string): BuildOptions {
  return {
    entryPoints: [path.join(ROOT, 'src', 'main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    legalComments: 'none',
    // The SEA hands V8 the bundle as one source string, kept for the process's life (lazy compilation): a single
    // non-ASCII character (a comment's "—") makes it two bytes per character, 13.5 MB instead of 6.75. ASCII escapes in
    // strings and no comments or indentation (names stay, so stack traces keep their function names) hold it at 4.8 MB.
    charset: 'ascii',
    minifyWhitespace: true,
    logLevel: 'warning',
    // import.meta is empty in a CommonJS bundle: fail the build rather than ship code that silently breaks.
    logOverride: { 'empty-import-meta': 'error' },
    plugins: [oneMimeDb()],
  };
}

/**
 * mime-db is one 0.23 MB JSON table, and npm installs a copy for each mime-types major: send's, koa's and type-is's
 * (the demo's provider) and form-data's (acme-client's axios) came out as four copies, 0.91 MB of the bundle. Every
 * `require('mime-db')` gets the copy send uses, so serve's static files keep their types; the others read the same
 * table (mime-types 2 and 3 read one format: https://github.com/jshttp/mime-db#data-structure).
 */
function oneMimeDb(): Plugin {
  return {
    name: 'one-mime-db',
    setup(build) {
      const fromSend = createRequire(createRequire(path.join(ROOT, 'package.json')).resolve('send'));
      const mimeDb = createRequire(fromSend.resolve('mime-types')).resolve('mime-db');
      build.onResolve({ filter: /^mime-db$/ }, () => ({ path: mimeDb }));
    },
  };
}

function listFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath, entry.name));
}

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const result = await buildBinary((line) => process.stdout.write(`build:binary: ${line}\n`));
  process.stdout.write(
    `build:binary: ${path.relative(process.cwd(), result.binary)} ${(result.bytes / 1e6).toFixed(1)} MB ` +
      `(bundle ${(result.bundleBytes / 1e6).toFixed(2)} MB) in ${(result.ms / 1000).toFixed(1)} s\n`,
  );
}
