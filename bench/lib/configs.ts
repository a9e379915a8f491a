// Equivalent configurations for every system, generated per run into its folder: TLS 1.3 offered everywhere,
// one certificate per server name, upstream keep-alive of 64 connections, no access log, HTTP/1.1 + HTTP/2.
import fs from 'node:fs';
import path from 'node:path';
import { createSelfSigned } from '../../src/tls/self-signed.ts';

/** The value every load generator sends as Cookie, and what the auth service accepts. */
export const SESSION_COOKIE = '_oauth2_proxy=bench-session-token-0123456789abcdef';
/** 100 bytes, as in the research runs. */
export const SMALL_BODY = '0123456789'.repeat(10);

export function siteNames(count: number): string[] {
  return [
    'localhost',
    ...Array.from({ length: count - 1 }, (_, i) => `site-${String(i + 2).padStart(2, '0')}.bench.test`),
  ];
}

/** One self-signed ECDSA P-256 certificate per name, made once per harness run and shared by all systems. */
export async function writeCertificates(dir: string, names: readonly string[]): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  for (const name of names) {
    if (fs.existsSync(path.join(dir, `${name}.crt`))) continue;
    const pair = await createSelfSigned(name === 'localhost' ? ['localhost', '127.0.0.1'] : [name]);
    fs.writeFileSync(path.join(dir, `${name}.key`), pair.keyPem, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, `${name}.crt`), pair.certPem);
  }
}

const nginxCommon = (dir: string) => `pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }`;

const nginxHttpCommon = (dir: string) => `  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  client_body_temp_path ${dir}/tmp-client_body;
  proxy_temp_path ${dir}/tmp-proxy;
  fastcgi_temp_path ${dir}/tmp-fastcgi;
  uwsgi_temp_path ${dir}/tmp-uwsgi;
  scgi_temp_path ${dir}/tmp-scgi;`;

/** The upstream: 100 bytes at /, a 1 MB file at /1mb, stub_status for counting upstream connections. */
export function nginxBackendConf(dir: string, port: number, bigFile: string): string {
  return `worker_processes 1;
${nginxCommon(dir)}
http {
${nginxHttpCommon(dir)}
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location = /nginx_status { stub_status; }
    location = /1mb { default_type application/octet-stream; alias ${bigFile}; }
    location / { default_type text/plain; return 200 "${SMALL_BODY}"; }
  }
}
`;
}

export function nginxProxyConf(o: {
  dir: string;
  port: number;
  upstreamPort: number;
  names: readonly string[];
  certDir: string;
  authPort?: number;
}): string {
  const auth = o.authPort !== undefined;
  const servers = o.names
    .map(
      (name, i) => `  server {
    listen 127.0.0.1:${o.port} ssl http2${i === 0 ? ' default_server backlog=4096' : ''};
    server_name ${name};
    ssl_certificate ${o.certDir}/${name}.crt;
    ssl_certificate_key ${o.certDir}/${name}.key;
    # nginx 1.22's default has no TLSv1.3 (it joined the default in 1.23.4); the other systems negotiate 1.3.
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
${auth ? '      auth_request /_auth;\n' : ''}      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 60s;
    }
${
  auth
    ? `    location = /_auth {
      internal;
      proxy_pass http://auth/auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
`
    : ''
}  }`,
    )
    .join('\n');
  return `worker_processes 1;
${nginxCommon(o.dir)}
http {
${nginxHttpCommon(o.dir)}
  # WebSocket upgrades pass through; everything else keeps the upstream connection alive (Connection "").
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream backend { server 127.0.0.1:${o.upstreamPort}; keepalive 64; keepalive_requests 1000000; }
${auth ? `  upstream auth { server 127.0.0.1:${o.authPort}; keepalive 64; keepalive_requests 1000000; }\n` : ''}${servers}
}
`;
}

export function caddyfile(o: {
  port: number;
  upstreamPort: number;
  names: readonly string[];
  certDir: string;
}): string {
  const sites = o.names
    .map(
      (name) => `https://${name}:${o.port} {
	bind 127.0.0.1
	tls ${o.certDir}/${name}.crt ${o.certDir}/${name}.key
	reverse_proxy 127.0.0.1:${o.upstreamPort} {
		transport http {
			keepalive 65s
			keepalive_idle_conns_per_host 64
		}
	}
}`,
    )
    .join('\n');
  return `{
	admin off
	auto_https off
	default_sni ${o.names[0]}
	servers {
		protocols h1 h2
	}
}
${sites}
`;
}

/** A Gatehouse config folder: gatehouse.toml + one site file per name, certificates referenced by absolute path. */
export function writeGatehouseConfig(o: {
  dir: string;
  port: number;
  upstreamPort: number;
  names: readonly string[];
  certDir: string;
  siteToml?: string;
}): void {
  fs.mkdirSync(path.join(o.dir, 'sites'), { recursive: true });
  // One serving process, like nginx's worker_processes 1 here: the comparison is per pinned core.
  fs.writeFileSync(
    path.join(o.dir, 'gatehouse.toml'),
    `workers = 1

[https]
listen = ["127.0.0.1:${o.port}"]
default_site = "${o.names[0]}"

[log]
level = "warn"
access_log = false

[lifecycle]
shutdown_grace = "1s"
`,
  );
  for (const name of o.names) {
    fs.writeFileSync(
      path.join(o.dir, 'sites', `${name}.toml`),
      `server_names = ["${name}"]

[tls]
cert = "${o.certDir}/${name}.crt"
key = "${o.certDir}/${name}.key"

[upstreams.backend]
servers = ["http://127.0.0.1:${o.upstreamPort}"]
keepalive = 64

[[routes]]
path = "/"
upstream = "backend"
${o.siteToml ?? ''}`,
    );
  }
}
