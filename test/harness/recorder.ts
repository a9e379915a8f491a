// A plain node:http upstream that records exactly what reached it: each request's method, target, headers and body
// bytes, and how its body and its response ended ('end' = a complete request; 'aborted' = the connection was cut).
// `answer` decides per request, when it arrives: a body (or a function giving it) to answer with once the request is
// complete, or 'hang' to never answer.
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TestContext } from 'node:test';

export interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** How the request body ended: 'end' = complete, 'aborted' = cut off. */
  bodyEnded: Promise<'end' | 'aborted'>;
  /** How the response ended: 'finished' = sent whole, 'aborted' = the connection closed first. */
  responseEnded: Promise<'finished' | 'aborted'>;
  /** Resolves once at least `bytes` body bytes have arrived. */
  received(bytes: number): Promise<void>;
  req: http.IncomingMessage;
  res: http.ServerResponse;
}

export interface Recorder {
  url: string;
  seen: Seen[];
  /** The first request whose target is `url`, waiting for it up to `ms`. */
  request(url: string, ms?: number): Promise<Seen>;
  /** Upstream connections currently open. */
  openConnections(): number;
  server: http.Server;
}

export async function startRecorder(
  t: TestContext,
  answer: (seen: Seen) => string | (() => string) | 'hang',
): Promise<Recorder> {
  const seen: Seen[] = [];
  const events = new EventEmitter();
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const data = new EventEmitter();
    let outcome: 'end' | 'aborted' | undefined;
    const entry: Seen = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: Buffer.alloc(0),
      req,
      res,
      bodyEnded: new Promise((resolve) => {
        req.on('end', () => {
          outcome ??= 'end';
          resolve(outcome);
        });
        req.on('aborted', () => {
          outcome ??= 'aborted';
          resolve(outcome);
        });
        req.on('error', () => {
          outcome ??= 'aborted';
          resolve(outcome);
        });
        req.on('close', () => {
          outcome ??= 'aborted';
          resolve(outcome);
        });
      }),
      responseEnded: new Promise((resolve) =>
        res.on('close', () => resolve(res.writableFinished ? 'finished' : 'aborted')),
      ),
      received: (bytes) =>
        new Promise((resolve) => {
          const check = () => {
            if (entry.body.length >= bytes) {
              data.off('data', check);
              resolve();
            }
          };
          data.on('data', check);
          check();
        }),
    };
    req.on('data', (chunk: Buffer) => {
      entry.body = Buffer.concat([entry.body, chunk]);
      data.emit('data');
    });
    seen.push(entry);
    events.emit('request', entry);
    const reply = answer(entry);
    if (reply !== 'hang')
      void entry.bodyEnded.then((how) => {
        if (how === 'end') res.end(typeof reply === 'function' ? reply() : reply);
      });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    server,
    openConnections: () => sockets.size,
    request: (url, ms = 10_000) => {
      const found = seen.find((s) => s.url === url);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          events.off('request', onRequest);
          reject(new Error(`the upstream never received ${url} (waited ${ms} ms)`));
        }, ms);
        const onRequest = (entry: Seen) => {
          if (entry.url === url) {
            clearTimeout(timer);
            events.off('request', onRequest);
            resolve(entry);
          }
        };
        events.on('request', onRequest);
      });
    },
  };
}
