// The single executable (dist/gatehouse) runs every CLI verb with an empty environment (no Node on PATH) from a
// directory outside the repository, and serves (as a cluster of two workers) two sites by SNI, a proxied request
// and a WebSocket echo, plus a third site behind a login at a real OpenID Provider.
// The binary is rebuilt only when src/ (the build script src/cli/build-binary.ts among it), package.json or package-lock.json changed (content hash).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { BINARY, ROOT, binaryIsFresh } from '../../src/cli/build-binary.ts';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { createSelfSigned } from '../../src/tls/self-signed.ts';
import { Browser } from '../harness/gatehouse-auth.ts';
import { freePort } from '../harness/net.ts';
import { startOP } from '../harness/op.ts';

const run = promisify(execFile);

test('single executable: version, check and serve with an empty environment', { timeout: 300_000 }, async (t) => {
  if (!binaryIsFresh()) {
    // Same Node (the pinned 24) as `npm run build:binary`; a blob from another Node would make a binary that crashes.
    await run(process.execPath, [path.join(ROOT, 'src', 'cli', 'build-binary.ts')], { cwd: ROOT, timeout: 240_000 });
  }
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-sea-'));
  t.after(() => fs.rmSync(cwd, { recursive: true, force: true }));
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  const pairs = {
    'a.test': await createSelfSigned(['a.test']),
    'b.test': await createSelfSigned(['b.test']),
    'login.test': await createSelfSigned(['login.test']),
  };
  // The login site's provider must know the redirect URL, so the port is chosen up front.
  const port = await freePort();
  const op = await startOP({ redirectUris: [`https://login.test:${port}/oauth2/callback`] });
  t.after(() => op.close());
  writeConfig(path.join(cwd, 'conf'), backend.url, pairs, port, op.issuer);
  const gatehouse = (args: string[]) => run(BINARY, args, { cwd, env: {}, timeout: 30_000 });

  await t.test('version', async () => {
    const { stdout } = await gatehouse(['version']);
    assert.match(stdout, /^gatehouse \d+\.\d+\.\d+ \(node v24\./);
  });

  await t.test('check: valid config exits 0, invalid config exits 2 naming file, line and key', async () => {
    const { stdout } = await gatehouse(['check', '--config', 'conf']);
    assert.match(stdout, /configuration is valid \(3 sites: a\.test, b\.test, login\.test\)/);
    fs.cpSync(path.join(cwd, 'conf'), path.join(cwd, 'bad'), { recursive: true });
    fs.appendFileSync(path.join(cwd, 'bad', 'sites', 'b.test.toml'), 'proxy_pass = "nope"\n');
    const failed = await gatehouse(['check', '--config', 'bad']).then(
      () => assert.fail('check accepted an unknown key'),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(failed.code, 2);
    assert.match(failed.stderr, /b\.test\.toml:10: routes\[0\]\.proxy_pass: unknown key/);
  });

  await t.test('serve: TLS by SNI, a proxied request and a WebSocket echo per site', async (st) => {
    const child = spawn(BINARY, ['serve', '--config', 'conf'], { cwd, env: {}, stdio: ['ignore', 'pipe', 'inherit'] });
    st.after(async () => {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    });
    assert.equal(await listeningPort(child.stdout), port);

    for (const [name, pair] of Object.entries(pairs).filter(([name]) => name !== 'login.test')) {
      const { status, body, certificate } = await get(port, name, '/hello?x=1');
      assert.equal(status, 200);
      assert.equal(certificate.raw.toString('base64'), pemBody(pair.certPem), `${name} is served its own certificate`);
      const seen = JSON.parse(body) as { url: string; headers: Record<string, string> };
      assert.equal(seen.url, '/hello?x=1');
      assert.equal(seen.headers.host, name);
      assert.equal(seen.headers['x-forwarded-proto'], 'https');
      assert.equal(await echoOnce(port, name, `ping ${name}`), `ping ${name}`);
    }

    // login.test: anonymous → 401 for a script; a browser-like client logs in as alice at the provider and comes back
    // to the page with her identity headers (the login state and the session cross the binary's two workers).
    assert.equal((await get(port, 'login.test', '/')).status, 401);
    const browser = new Browser(pairs['login.test'].certPem);
    const landed = await browser.navigate(`https://login.test:${port}/after/login?x=1`, 'alice');
    assert.equal(landed.status, 200);
    assert.equal(landed.url.pathname, '/after/login');
    assert.match(landed.body, /alice@example\.test/);

    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, 'SIGTERM stops the binary gracefully');
  });

  // The binary's workers re-run it through node:cluster; whatever name started the primary (a relative path, a
  // PATH lookup, a symlink), every worker must see `serve` as its command, listen and answer.
  await t.test(
    'serve, workers = 2: started as ./gatehouse, ./dist/gatehouse, through PATH, a symlink and by absolute path',
    async (st) => {
      const conf = path.join(cwd, 'conf-workers');
      writeWorkersConfig(conf, backend.url, pairs['a.test']);
      const links = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-sea-link-'));
      st.after(() => fs.rmSync(links, { recursive: true, force: true }));
      fs.symlinkSync(BINARY, path.join(links, 'gh'));
      const dist = path.dirname(BINARY);
      const ways: Array<{ name: string; command: string; cwd: string; env: Record<string, string> }> = [
        { name: './gatehouse in its own folder', command: './gatehouse', cwd: dist, env: {} },
        { name: "the README's ./dist/gatehouse", command: './dist/gatehouse', cwd: ROOT, env: {} },
        { name: 'gatehouse through PATH', command: 'gatehouse', cwd, env: { PATH: dist } },
        { name: 'a symlink through PATH', command: 'gh', cwd, env: { PATH: links } },
        { name: 'the absolute path', command: BINARY, cwd, env: {} },
      ];
      for (const way of ways) {
        // env -i plus PATH: spawn looks the command up in the PATH given here, as a shell would.
        const child = spawn(way.command, ['serve', '--config', conf], {
          cwd: way.cwd,
          env: way.env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const output = collect(child);
        st.after(async () => {
          if (child.exitCode === null) {
            child.kill('SIGKILL');
            await once(child, 'exit');
          }
        });
        const workers = await output.waitFor(
          (lines) => lines.filter((line) => line.includes('"msg":"listening"')).length === 2,
          `${way.name}: two workers listening`,
        );
        const pids = new Set(
          workers
            .filter((line) => line.includes('"msg":"listening"'))
            .map((line) => (JSON.parse(line) as { pid: number }).pid),
        );
        assert.equal(pids.size, 2, `${way.name}: two workers`);
        const listening = JSON.parse(workers.find((line) => line.includes('"msg":"listening"'))!) as {
          https: string[];
        };
        const port = Number(listening.https[0]!.split(':').pop());
        const via = `/via/${way.name.replace(/[^a-z]+/gi, '-')}`;
        const { status, body } = await get(port, 'a.test', via);
        assert.equal(status, 200, way.name);
        assert.equal((JSON.parse(body) as { url: string }).url, via, `${way.name}: proxied to the upstream`);
        child.kill('SIGTERM');
        const [code] = (await once(child, 'close')) as [number | null]; // 'close': exited and its output fully read
        assert.equal(code, 0, `${way.name}: stops with exit 0\n${output.text()}`);
        assert.doesNotMatch(output.text(), /unexpected argument|worker exited/, way.name);
      }
    },
  );
});

/** One site (a.test → upstream), two workers, port 0 (the workers share the primary's port). */
function writeWorkersConfig(dir: string, upstream: string, pair: { certPem: string; keyPem: string }): void {
  fs.mkdirSync(path.join(dir, 'sites'), { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'gatehouse.toml'),
    'workers = 2\n\n[https]\nlisten = ["127.0.0.1:0"]\n\n[log]\naccess_log = false\n\n[lifecycle]\nshutdown_grace = "2s"\n',
  );
  fs.writeFileSync(path.join(dir, 'a.test.crt'), pair.certPem);
  fs.writeFileSync(path.join(dir, 'a.test.key'), pair.keyPem, { mode: 0o600 });
  fs.writeFileSync(
    path.join(dir, 'sites', 'a.test.toml'),
    `server_names = ["a.test"]\n\n[tls]\ncert = "a.test.crt"\nkey = "a.test.key"\n\n[[routes]]\npath = "/"\nupstream = "${upstream}"\n`,
  );
}

/** Every line the process writes (stdout and stderr); waitFor() is bounded and shows them all when it gives up. */
function collect(child: import('node:child_process').ChildProcess) {
  const lines: string[] = [];
  const changed = new EventTarget();
  for (const stream of [child.stdout!, child.stderr!])
    createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      changed.dispatchEvent(new Event('line'));
    });
  child.once('exit', () => changed.dispatchEvent(new Event('line')));
  const text = () => lines.join('\n');
  const waitFor = (done: (lines: string[]) => boolean, what: string, ms = 60_000) =>
    new Promise<string[]>((resolve, reject) => {
      const check = () => {
        if (done(lines)) {
          finish();
          resolve(lines);
        } else if (child.exitCode !== null) {
          finish();
          reject(new Error(`exited ${child.exitCode} before: ${what}\n${text()}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out waiting for: ${what}\n${text()}`));
      }, ms);
      const finish = () => {
        clearTimeout(timer);
        changed.removeEventListener('line', check);
      };
      changed.addEventListener('line', check);
      check();
    });
  return { waitFor, text };
}

function writeConfig(
  dir: string,
  upstream: string,
  pairs: Record<string, { certPem: string; keyPem: string }>,
  port: number,
  issuer: string,
): void {
  fs.mkdirSync(path.join(dir, 'sites'), { recursive: true });
  // Two workers: the cluster's forked processes must run the binary's serve too.
  fs.writeFileSync(
    path.join(dir, 'gatehouse.toml'),
    `workers = 2\n\n[https]\nlisten = ["127.0.0.1:${port}"]\n\n[log]\nlevel = "info"\naccess_log = false\n\n[lifecycle]\nshutdown_grace = "2s"\n`,
  );
  for (const [name, pair] of Object.entries(pairs)) {
    // Certificate paths relative to the config folder, as an operator would write them.
    fs.mkdirSync(path.join(dir, 'certs'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'certs', `${name}.crt`), pair.certPem);
    fs.writeFileSync(path.join(dir, 'certs', `${name}.key`), pair.keyPem, { mode: 0o600 });
    const auth =
      name !== 'login.test'
        ? ''
        : `\n[auth]\nprovider = "oidc"\noidc_issuer_url = "${issuer}"\nclient_id = "gatehouse"\nclient_secret = "gatehouse-secret"\ncookie_secret = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="\nemail_domains = ["example.test"]\n`;
    fs.writeFileSync(
      path.join(dir, 'sites', `${name}.toml`),
      `server_names = ["${name}"]\n\n[tls]\ncert = "certs/${name}.crt"\nkey = "certs/${name}.key"\n\n[[routes]]\npath = "/"\nupstream = "${upstream}"\n${auth}`,
    );
  }
}

/** Port from the JSON "listening" log line (the config says port 0). */
async function listeningPort(stdout: NodeJS.ReadableStream): Promise<number> {
  for await (const line of createInterface({ input: stdout })) {
    const entry = JSON.parse(line) as { msg?: string; https?: string[] };
    if (entry.msg === 'listening') return Number(/:(\d+)$/.exec(entry.https![0]!)![1]);
  }
  throw new Error('gatehouse exited before listening');
}

function get(
  port: number,
  host: string,
  urlPath: string,
): Promise<{ status: number; body: string; certificate: { raw: Buffer } }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        servername: host,
        headers: { host, accept: 'application/json' },
        rejectUnauthorized: false,
        agent: false,
      },
      (res) => {
        const certificate = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
        let body = '';
        res
          .setEncoding('utf8')
          .on('data', (chunk: string) => {
            body += chunk;
          })
          .on('end', () => resolve({ status: res.statusCode!, body, certificate }));
      },
    );
    req.on('error', reject);
  });
}

async function echoOnce(port: number, host: string, message: string): Promise<string> {
  // ws hands `servername` on to tls.connect (its types omit it): SNI and Host name the same site.
  const options: WebSocket.ClientOptions & { servername: string } = {
    servername: host,
    headers: { host },
    rejectUnauthorized: false,
  };
  const socket = new WebSocket(`wss://127.0.0.1:${port}/ws`, options);
  try {
    await once(socket, 'message'); // the backend's hello
    socket.send(message);
    const [data] = (await once(socket, 'message')) as [Buffer];
    return data.toString();
  } finally {
    socket.close();
  }
}

function pemBody(pem: string): string {
  return pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
}
