// The floors of src/: a file imports files of its own folder or of a lower floor, never of a higher floor nor of
// another folder on its own floor, and no two files import each other, directly or through others. Bottom to top:
//
//   0  base/           what everything shares: request/response types, the error table (sendError), own answers,
//                      the page renderer, atomic file writes, HTTP/2 limits
//   1  config/
//   2  store/          the shared store's connections (Redis), read by sessions and ACME
//   3  tls/ session/ demo/
//   4  observability/  logger, metrics, the [metrics] listener
//   5  proxy/          upstream pools, header rules, HTTP and WebSocket forwarding, static files
//   6  auth/ acme/
//   7  http/           the request path, the Runtime it reads, the servers and listeners, connection tracking
//   8  runtime/        composition: createGatehouse's lifecycle, ACME wiring, cluster, signals
//   9  import/         `gatehouse import`: the nginx reader and the translation to Gatehouse's files
//  10  cli/
//  11  main.ts
//
// The import specifiers are read with a regular expression: this is our own source, not untrusted input.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const FLOORS: string[][] = [
  ['base'],
  ['config'],
  ['store'],
  ['tls', 'session', 'demo'],
  ['observability'],
  ['proxy'],
  ['auth', 'acme'],
  ['http'],
  ['runtime'],
  ['import'],
  ['cli'],
  ['main.ts'],
];

const SRC = path.resolve(import.meta.dirname, '../../src');

/** Static `import … from '…'` and `export … from '…'`, side-effect `import '…'` and dynamic `import('…')`. */
const SPECIFIER = /\b(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g;

function specifiersOf(text: string): string[] {
  return [...text.matchAll(SPECIFIER)].map((match) => match[1]!);
}

interface Edge {
  from: string;
  to: string;
}

/** The top folder of a src-relative path (or the file itself at the top of src/). */
function folderOf(file: string): string {
  return file.split('/')[0]!;
}

function floorOf(file: string): number {
  const folder = folderOf(file);
  const floor = FLOORS.findIndex((names) => names.includes(folder));
  assert.notEqual(floor, -1, `${file}: its folder "${folder}" has no floor in FLOORS`);
  return floor;
}

/** Every import between two files of src/ (relative specifiers; packages and node: modules are not floors). */
function importsOf(src: string): { files: string[]; edges: Edge[] } {
  const files = fs
    .readdirSync(src, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts'))
    .map((name) => name.split(path.sep).join('/'))
    .sort();
  const edges: Edge[] = [];
  for (const from of files) {
    const text = fs.readFileSync(path.join(src, from), 'utf8');
    for (const specifier of specifiersOf(text)) {
      if (!specifier.startsWith('.')) continue;
      const to = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
      if (to.startsWith('../')) continue; // outside src/ (package.json)
      edges.push({ from, to });
    }
  }
  return { files, edges };
}

/** `from → to` for every import that points up a floor or sideways to another folder on the same floor. */
function upwardImports(src: string): string[] {
  return importsOf(src)
    .edges.filter(({ from, to }) => {
      if (folderOf(from) === folderOf(to)) return false;
      return floorOf(to) >= floorOf(from);
    })
    .map(({ from, to }) => `src/${from} → src/${to}`);
}

/** Each file cycle once, as `a → b → … → a` (depth-first search over the file graph). */
function fileCycles(src: string): string[] {
  const { files, edges } = importsOf(src);
  const next = new Map<string, string[]>(files.map((file) => [file, []]));
  for (const { from, to } of edges) next.get(from)?.push(to);
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const cycles: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    stack.push(file);
    for (const to of next.get(file) ?? []) {
      if (state.get(to) === 'open')
        cycles.push([...stack.slice(stack.indexOf(to)), to].map((f) => `src/${f}`).join(' → '));
      else if (!state.has(to)) visit(to);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of files) if (!state.has(file)) visit(file);
  return cycles;
}

test('the import reader sees every kind of import, the imports of src/, and every folder has a floor', () => {
  const sample = [
    "import fs from 'node:fs';",
    'import {',
    '  a,',
    '  type B,',
    "} from '../config/model.ts';",
    "import type { C } from './c.ts';",
    "export type { D } from './d/e.ts';",
    "export * from './f.ts';",
    "import './side-effect.ts';",
    "const { g } = await import('../g.ts');",
  ].join('\n');
  assert.deepEqual(specifiersOf(sample), [
    'node:fs',
    '../config/model.ts',
    './c.ts',
    './d/e.ts',
    './f.ts',
    './side-effect.ts',
    '../g.ts',
  ]);
  const { files, edges } = importsOf(SRC);
  assert.ok(files.length > 80, `${files.length} files`);
  assert.ok(edges.length > 200, `${edges.length} imports`);
  for (const file of files) floorOf(file);
});

test('no import points up a floor or sideways to another folder on the same floor', () => {
  assert.deepEqual(upwardImports(SRC), []);
});

test('no file cycle', () => {
  assert.deepEqual(fileCycles(SRC), []);
});
