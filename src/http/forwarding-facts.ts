// Who the client is and how it reached us, as the upstream is told in X-Real-IP / X-Forwarded-*.
import type { Runtime } from './runtime.ts';
import type { ForwardingFacts } from '../proxy/request-headers.ts';
import { clientAddress, type AnyRequest } from '../base/types.ts';

export function forwardingFacts(
  runtime: Runtime,
  req: AnyRequest,
  host: string,
  requestId: string,
  proto: 'https' | 'http' = 'https',
): ForwardingFacts {
  const peerAddress = clientAddress(req);
  const peerIsTrusted = runtime.trustedProxies.has(peerAddress);
  const forwardedFor = req.headers['x-forwarded-for'];
  return {
    peerAddress,
    peerIsTrusted,
    clientAddress: peerIsTrusted
      ? runtime.trustedProxies.clientAddress(
          peerAddress,
          Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor,
        )
      : peerAddress,
    proto,
    host: hostHeader(req) ?? host,
    requestId,
  };
}

/** The Host as the client sent it (with port), passed upstream unchanged like nginx's `proxy_set_header Host $http_host`. */
function hostHeader(req: AnyRequest): string | undefined {
  const raw = req.headers[':authority'] ?? req.headers.host;
  return Array.isArray(raw) ? raw[0] : raw;
}
