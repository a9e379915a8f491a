// Writes an auth test's config folder (test CA from pki.ts) and serves it (serveFolder in gatehouse.ts); and a small scripted browser (cookie jar, manual redirects, SNI = host) that can log in at oidc-provider.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { FetchLike } from '../../src/auth/oidc/client.ts';
import type { Listening } from '../../src/http/listeners.ts';
import type { Runtime } from '../../src/http/runtime.ts';
import { closedPort } from './backend.ts';
import { serveFolder } from './gatehouse.ts';
import { createTestCa } from './pki.ts';

export const SECRET = 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY='; // base64 of 32 bytes

/** A port nothing listens on yet, to be bound next (the provider must know the redirect URI's port up front). */
export const freePort = closedPort;

type TomlValue = string | number | boolean | string[];
export function toml(table: Record<string, TomlValue | undefined>): string {
  return Object.entries(table)
    .filter(([, v]) => v !== undefined)
    .map(
      ([k, v]) => `${k} = ${Array.isArray(v) ? `[${v.map((x) => JSON.stringify(x)).join(', ')}]` : JSON.stringify(v)}`,
    )
    .join('\n');
}

/** top: the site's own keys (deny_paths, …), written before its first table; extra: tables after the "/" route. */
/** The [auth] table for the client that op.ts registers (gatehouse / gatehouse-secret) at the provider `issuer`. */
export function opAuth(issuer: string): Record<string, TomlValue | undefined> {
  return {
    provider: 'oidc',
    oidc_issuer_url: issuer,
    client_id: 'gatehouse',
    client_secret: 'gatehouse-secret',
    cookie_secret: SECRET,
    email_domains: ['example.test'],
  };
}

export interface SiteSpec {
  names: string[];
  upstream?: string;
  auth?: Record<string, TomlValue | undefined>;
  top?: string;
  extra?: string;
}

export interface TestGatehouse {
  dir: string;
  port: number;
  caPem: string;
  runtime: Runtime;
  listening: Listening;
  logs: Record<string, unknown>[];
  origin(host: string): string;
  stop(): Promise<void>;
}

/** Writes config/ into dir (reused when given, so a second start finds the first one's sessions) and serves it. */
export async function startGatehouse(opts: {
  sites: SiteSpec[];
  port?: number;
  dir?: string;
  fetch?: FetchLike;
  global?: string;
}): Promise<TestGatehouse> {
  const dir = writeAuthConfig(opts);
  const { runtime, listening, logs, stop } = await serveFolder(dir, { fetch: opts.fetch });
  const port = listening.https[0]!.port;
  return {
    dir,
    port,
    caPem: fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8'),
    runtime,
    listening,
    logs,
    origin: (host) => `https://${host}:${port}`,
    stop,
  };
}

/** Writes the config folder startGatehouse serves (test CA in ca.pem), for a test that runs `gatehouse serve` on it. */
export function writeAuthConfig(opts: { sites: SiteSpec[]; port?: number; dir?: string; global?: string }): string {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-auth-'));
  const names = opts.sites.flatMap((s) => s.names);
  if (!fs.existsSync(path.join(dir, 'srv.pem'))) {
    const leaf = createTestCa(dir).issue(['localhost', '127.0.0.1', ...names], 'leaf');
    fs.copyFileSync(leaf.certFile, path.join(dir, 'srv.pem'));
    fs.copyFileSync(leaf.keyFile, path.join(dir, 'srv.key'));
  }
  fs.mkdirSync(path.join(dir, 'sites'), { recursive: true });
  // global: top-level keys (before the first table), e.g. workers = 2.
  fs.writeFileSync(
    path.join(dir, 'gatehouse.toml'),
    `${opts.global ?? 'workers = 1'}\n[https]\nlisten = ["127.0.0.1:${opts.port ?? 0}"]\n[log]\nlevel = "info"\n[metrics]\nlisten = "127.0.0.1:0"\n`,
  );
  for (const file of fs.readdirSync(path.join(dir, 'sites'))) fs.rmSync(path.join(dir, 'sites', file));
  opts.sites.forEach((site, i) => {
    fs.writeFileSync(
      path.join(dir, 'sites', `site${i}.toml`),
      [
        toml({ server_names: site.names }),
        site.top ?? '',
        '[tls]',
        toml({ cert: 'srv.pem', key: 'srv.key' }),
        '[[routes]]',
        toml({ path: '/', upstream: site.upstream ?? 'http://127.0.0.1:9' }),
        site.extra ?? '',
        ...(site.auth ? ['[auth]', toml(site.auth)] : []),
      ].join('\n'),
    );
  });
  return dir;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  url: URL;
  json<T = Record<string, unknown>>(): T;
}

/** A scripted browser: one cookie jar per host, every hostname resolved to 127.0.0.1, redirects followed by hand. */
export class Browser {
  readonly jar = new Map<string, Map<string, string>>();
  readonly #ca: string;
  readonly #rewrite: (url: string) => string;
  /** rewrite: where a URL really goes (e.g. login.microsoftonline.com → the Entra emulator); cookies stay keyed by the original host. */
  constructor(caPem: string, rewrite: (url: string) => string = (u) => u) {
    this.#ca = caPem;
    this.#rewrite = rewrite;
  }

  cookies(host: string): Map<string, string> {
    let cookies = this.jar.get(host);
    if (!cookies) this.jar.set(host, (cookies = new Map()));
    return cookies;
  }

  /** [name, value] of Gatehouse's session cookie for an origin (not a login-state cookie), if the browser holds one. */
  sessionCookie(origin: string): [string, string] | undefined {
    return [...this.cookies(new URL(origin).host)].find(([name]) => !name.includes('_login_'));
  }

  request(
    target: string | URL,
    init: { method?: string; headers?: Record<string, string>; body?: string } = {},
  ): Promise<Reply> {
    const url = new URL(target);
    const real = new URL(this.#rewrite(url.href));
    const cookies = [...this.cookies(url.host)].map(([k, v]) => `${k}=${v}`).join('; ');
    const headers: Record<string, string> = {
      host: url.host,
      'sec-fetch-mode': 'navigate',
      'sec-fetch-dest': 'document',
      accept: 'text/html',
      ...(cookies ? { cookie: cookies } : {}),
      ...init.headers,
    };
    for (const [k, v] of Object.entries(headers)) if (v === '') delete headers[k];
    const options = {
      method: init.method ?? 'GET',
      headers,
      host: '127.0.0.1',
      port: real.port,
      path: real.pathname + real.search,
      servername: real.hostname,
      ca: this.#ca,
      agent: false as const,
    };
    return new Promise((resolve, reject) => {
      const req = (real.protocol === 'https:' ? https : http).request(options, (res) => {
        for (const sc of res.headers['set-cookie'] ?? []) {
          const [pair, ...attrs] = sc.split(';');
          const eq = pair!.indexOf('=');
          const name = pair!.slice(0, eq).trim();
          if (attrs.some((a) => /^\s*max-age=0\s*$/i.test(a))) this.cookies(url.host).delete(name);
          else this.cookies(url.host).set(name, pair!.slice(eq + 1));
        }
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body, url, json: () => JSON.parse(body) }),
        );
      });
      req.on('error', reject);
      req.end(init.body);
    });
  }

  /** Follows redirects and fills oidc-provider's devInteractions forms (login as `login`) until a non-redirect answer. */
  async navigate(start: string | URL, login = 'alice', opts: { stopAt?: (url: URL) => boolean } = {}): Promise<Reply> {
    let url = new URL(start);
    for (let hop = 0; hop < 25; hop++) {
      const res = await this.request(url);
      if (opts.stopAt?.(url)) return res;
      if (res.status >= 300 && res.status < 400 && res.headers.location) {
        url = new URL(res.headers.location, url);
        continue;
      }
      const action = /<form[^>]*action="([^"]+)"/.exec(res.body)?.[1];
      const prompt = /name="prompt" value="(\w+)"/.exec(res.body)?.[1];
      const logoutForm = /id="op\.logoutForm"/.test(res.body);
      if (logoutForm && action) {
        const xsrf = /name="xsrf" value="([^"]+)"/.exec(res.body)?.[1] ?? '';
        const post = await this.request(new URL(action.replaceAll('&amp;', '&'), url), {
          method: 'POST',
          body: new URLSearchParams({ xsrf, logout: 'yes' }).toString(),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        });
        if (!post.headers.location) return post;
        url = new URL(post.headers.location, url);
        continue;
      }
      if (!action || !prompt) return res;
      const body = new URLSearchParams(prompt === 'login' ? { prompt, login, password: 'x' } : { prompt }).toString();
      const post = await this.request(new URL(action.replaceAll('&amp;', '&'), url), {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      url = new URL(post.headers.location!, url);
    }
    throw new Error('too many redirects');
  }
}
