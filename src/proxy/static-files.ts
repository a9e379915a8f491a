// A route that serves files, as nginx's `root` does: the full request path is appended to the root folder.
// `send` does the careful parts: no escape from the root (.. and encoded variants), dotfiles refused,
// index files, ETag / Last-Modified with conditional requests, ranges.
import type { Route } from '../config/model.ts';
import type { ErrorCode } from '../base/errors.ts';
import type { AnyRequest, AnyResponse } from '../base/types.ts';

export interface StaticResult {
  error?: ErrorCode;
  bytes: number;
}

let sendModule: Promise<{ default: typeof import('send') }> | undefined;

export async function serveStatic(
  req: AnyRequest,
  res: AnyResponse,
  action: Extract<Route['action'], { kind: 'static' }>,
  pathname: string,
): Promise<StaticResult> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return { error: 'ERR_HTTP_METHOD', bytes: 0 };
  // Loaded by the first file served: a configuration without a `root` route never carries it.
  const { default: send } = await (sendModule ??= import('send'));
  return new Promise((resolve) => {
    let bytes = 0;
    const stream = send(req as never, pathname, {
      root: action.root,
      index: action.index,
      dotfiles: 'deny',
      etag: true,
      lastModified: true,
    });
    stream.on('error', (error: { status?: number }) =>
      resolve({ error: error.status === 403 ? 'ERR_ROUTE_DENIED' : 'ERR_STATIC_NOT_FOUND', bytes }),
    );
    stream.on('stream', (file: NodeJS.ReadableStream) =>
      file.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      }),
    );
    res.once('finish', () => resolve({ bytes }));
    res.once('close', () => resolve({ bytes }));
    stream.pipe(res as never);
  });
}
