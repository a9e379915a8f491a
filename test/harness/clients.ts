// Clients that talk to Gatehouse as real ones do: TLS with SNI, verifying against the test CA.
import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { readAll } from './backend.ts';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One HTTPS/1.1 request on a fresh connection. `servername` is the SNI name (none when undefined); Host defaults to it. */
export function request(
  port: number,
  options: {
    ca: string;
    servername?: string;
    path?: string;
    method?: string;
    headers?: Record<string, string | string[]>;
    body?: string | Buffer;
  },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        ca: options.ca,
        servername: options.servername,
        method: options.method ?? 'GET',
        path: options.path ?? '/',
        headers: { ...(options.servername ? { host: options.servername } : {}), ...options.headers },
        agent: false,
        // Without SNI (an IP-literal client) the chain is still verified against the CA; only the name check is moot.
        ...(options.servername ? {} : { checkServerIdentity: () => undefined }),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** One HTTP/2 request on a fresh session. */
export function request2(
  port: number,
  options: { ca: string; servername: string; path?: string; headers?: Record<string, string> },
): Promise<Reply & { alpn: string | false | undefined }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca: options.ca, servername: options.servername });
    session.on('error', reject);
    const stream = session.request({
      ':path': options.path ?? '/',
      ':authority': options.servername,
      ...options.headers,
    });
    let body = '';
    let headers: IncomingHttpHeaders = {};
    stream.setEncoding('utf8');
    stream.on('response', (h) => {
      headers = h as IncomingHttpHeaders;
    });
    stream.on('data', (chunk: string) => {
      body += chunk;
    });
    stream.on('end', () => {
      const alpn = session.alpnProtocol;
      session.close();
      resolve({ status: Number(headers[':status']), headers, body, alpn });
    });
    stream.on('error', reject);
  });
}

/** An HTTP/2 session to app.test that the test ends; its errors are the test's to observe on streams. */
export function connectH2(t: import('node:test').TestContext, port: number, ca: string): http2.ClientHttp2Session {
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca, servername: 'app.test' });
  session.on('error', () => {});
  t.after(() => session.destroy());
  return session;
}

/** One request on an open HTTP/2 session: status and body. */
export async function get2(
  session: http2.ClientHttp2Session,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  const stream = session.request({ ':path': path, ':authority': 'app.test', ...headers });
  stream.on('error', () => {});
  const [response] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  return { status: Number(response[':status']), body: await readAll(stream) };
}
