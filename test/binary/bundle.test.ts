// What the single executable's bundle carries, and which of it each verb evaluates: the bundle is built with the
// options `npm run build:binary` uses (bundleOptions), plus a marker at the end of every module from node_modules
// that records its package when the module runs; the bundle then runs under the pinned Node as the binary runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { build, type Metafile, type Plugin } from 'esbuild';
import { bundleOptions } from '../../src/cli/build-binary.ts';
import { createSelfSigned } from '../../src/tls/self-signed.ts';
import { until } from '../harness/wait.ts';

const DEMO_ONLY = ['oidc-provider', 'koa'];
const ACME_ONLY = ['acme-client', 'node-forge', 'axios', '@peculiar/x509'];
/** Imported when a configuration or a request needs them (login, [metrics], format = "pretty", files, WebSockets). */
const ON_DEMAND = ['openid-client', 'jose', 'prom-client', 'pino-pretty', 'send', 'http-proxy-3'];

test(
  "the bundle carries mime-db once; serve evaluates neither the demo's provider, ACME nor what its config does not use, demo does",
  { timeout: 240_000 },
  async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bundle-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const bundle = path.join(dir, 'gatehouse.cjs');
    const options = bundleOptions(bundle);
    const { metafile } = await build({
      ...options,
      metafile: true,
      plugins: [...(options.plugins ?? []), markEvaluation()],
      banner: {
        js: 'process.on("exit", () => require("node:fs").writeFileSync(process.env.EVALUATED_REPORT, JSON.stringify([...globalThis.__evaluatedPackages ?? []])));',
      },
    });
    const carried = byPackage(metafile);
    t.diagnostic(
      `bundle with the markers ${(fs.statSync(bundle).size / 1e6).toFixed(2)} MB; largest: ${[...carried]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 8)
        .map(([name, bytes]) => `${name} ${(bytes / 1e6).toFixed(2)}`)
        .join(', ')}`,
    );

    await t.test("mime-db's table is in the bundle once", () => {
      const tables = Object.keys(metafile.outputs[Object.keys(metafile.outputs)[0]!]!.inputs).filter((file) =>
        /node_modules\/mime-db\/db\.json$/.test(file),
      );
      assert.equal(tables.length, 1, tables.join('\n'));
    });

    await t.test('the bundle is ASCII, so V8 holds its source as one byte per character', () => {
      const text = fs.readFileSync(bundle);
      const wide = text.findIndex((byte) => byte > 0x7f);
      assert.equal(
        wide,
        -1,
        `non-ASCII at byte ${wide}: ${text.subarray(Math.max(0, wide - 60), wide + 20).toString()}`,
      );
    });

    await t.test("the demo's provider and ACME are in the bundle (the binary runs every verb)", () => {
      for (const name of [...DEMO_ONLY, ...ACME_ONLY, ...ON_DEMAND]) assert.ok(carried.has(name), `${name} is bundled`);
    });

    await t.test("serve evaluates neither the demo's provider, ACME nor what its config does not use", async () => {
      const conf = path.join(dir, 'conf');
      const pair = await createSelfSigned(['a.test']);
      fs.mkdirSync(path.join(conf, 'sites'), { recursive: true });
      fs.writeFileSync(
        path.join(conf, 'gatehouse.toml'),
        'workers = 1\n\n[https]\nlisten = ["127.0.0.1:0"]\n\n[log]\naccess_log = false\n',
      );
      fs.writeFileSync(path.join(conf, 'a.test.crt'), pair.certPem);
      fs.writeFileSync(path.join(conf, 'a.test.key'), pair.keyPem, { mode: 0o600 });
      fs.writeFileSync(
        path.join(conf, 'sites', 'a.test.toml'),
        'server_names = ["a.test"]\n\n[tls]\ncert = "a.test.crt"\nkey = "a.test.key"\n\n[[routes]]\npath = "/"\nupstream = "http://127.0.0.1:9"\n',
      );
      const evaluated = await runUntil(bundle, ['serve', '--config', conf], dir, /"msg":"listening"/);
      for (const name of [...DEMO_ONLY, ...ACME_ONLY, ...ON_DEMAND])
        assert.ok(!evaluated.has(name), `serve evaluated ${name}`);
      assert.ok(evaluated.has('pino'), `the markers record what serve runs: ${[...evaluated].join(', ')}`);
      // Proxied requests go through Gatehouse's own upstream client: a public site never loads undici.
      assert.ok(!evaluated.has('undici'), 'serve of a public site evaluated undici');
    });

    await t.test('demo evaluates its provider', async () => {
      const evaluated = await runUntil(bundle, ['demo', '--port', '0'], dir, /demo ready/);
      for (const name of DEMO_ONLY)
        assert.ok(evaluated.has(name), `demo evaluated ${name}: ${[...evaluated].join(', ')}`);
    });
  },
);

/** Appends to each JavaScript module from node_modules a line that records its package when the module has run. */
function markEvaluation(): Plugin {
  return {
    name: 'mark-evaluation',
    setup(build) {
      build.onLoad({ filter: /[\\/]node_modules[\\/].*\.[cm]?js$/ }, (args) => ({
        contents: `${fs.readFileSync(args.path, 'utf8')}\n;(globalThis.__evaluatedPackages ??= new Set()).add(${JSON.stringify(packageOf(args.path))});\n`,
        loader: 'js',
      }));
    },
  };
}

/** Bytes in the bundle by package (the innermost node_modules folder), src/ as "gatehouse". */
function byPackage(metafile: Metafile): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const [file, { bytesInOutput }] of Object.entries(metafile.outputs[Object.keys(metafile.outputs)[0]!]!.inputs)) {
    const name = file.includes('node_modules/') ? packageOf(file) : 'gatehouse';
    sizes.set(name, (sizes.get(name) ?? 0) + bytesInOutput);
  }
  return sizes;
}

function packageOf(file: string): string {
  const parts = file
    .split(/[\\/]node_modules[\\/]|^node_modules[\\/]/)
    .at(-1)!
    .split(/[\\/]/);
  return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

/** Runs the bundle until a line matches, stops it with SIGTERM and returns the packages whose modules ran. */
async function runUntil(bundle: string, args: string[], cwd: string, ready: RegExp): Promise<Set<string>> {
  const report = path.join(cwd, `evaluated-${args[0]}.json`);
  const child = spawn(process.execPath, [bundle, ...args], {
    cwd,
    env: { EVALUATED_REPORT: report },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr])
    createInterface({ input: stream }).on('line', (line) => lines.push(line));
  try {
    await until(
      () => lines.some((line) => ready.test(line)) || child.exitCode !== null,
      () => `${args[0]}: a line matching ${ready}\n${lines.join('\n')}`,
    );
    assert.equal(child.exitCode, null, lines.join('\n'));
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'exit');
  }
  return new Set(JSON.parse(fs.readFileSync(report, 'utf8')) as string[]);
}
