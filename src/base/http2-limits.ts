// What one HTTP/2 client connection may cost (RFC 9113 §10.5, https://www.rfc-editor.org/rfc/rfc9113#section-10.5).
// - Concurrent streams are capped by SETTINGS_MAX_CONCURRENT_STREAMS (Node's default is unlimited): nghttp2 refuses a
//   stream beyond it with REFUSED_STREAM, or closes the connection once the client has acknowledged the limit
//   (RFC 9113 §5.1.2). See serverSettings().
// - Streams the client resets are counted against a budget ("rapid reset", CVE-2023-44487: open a stream, reset it at
//   once, repeat; each one starts a request but never counts as concurrent). Node's nghttp2 already ends a
//   connection after 1,000 resets in a burst (then 33 per second) with INTERNAL_ERROR; that still lets every
//   connection start 1,000 requests. Gatehouse's own budget is smaller (Envoy likewise closes connections whose
//   streams are mostly reset prematurely) and says why with the code RFC 9113 §7 has for it, GOAWAY
//   ENHANCE_YOUR_CALM. See limitResets().
import http2, { type Http2Stream, type ServerHttp2Session } from 'node:http2';

const { NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INTERNAL_ERROR } = http2.constants;

/** The budget refills completely in this time. */
const RESET_REFILL_MS = 10_000;

/** Streams Gatehouse reset itself (an upstream failing mid-response): those are not the client's resets. */
const resetByUs = new WeakSet<Http2Stream>();

/** The SETTINGS every HTTP/2 session of the HTTPS listeners starts with. */
export function serverSettings(limits: { http2_max_concurrent_streams: number }): http2.Settings {
  return { maxConcurrentStreams: limits.http2_max_concurrent_streams };
}

/** Resets a stream on Gatehouse's side (so the client sees a broken response, not a short one that looks complete). */
export function resetStream(stream: Http2Stream, code = NGHTTP2_INTERNAL_ERROR): void {
  resetByUs.add(stream);
  stream.close(code);
}

/** The reset budget of each session (a token bucket), and what to do when it runs out. */
interface ResetBudget {
  budget: number;
  tokens: number;
  last: number;
  resets: number;
  closing: boolean;
  onExceeded: (resets: number) => void;
}
const budgets = new WeakMap<ServerHttp2Session, ResetBudget>();

/**
 * Closes the session with GOAWAY ENHANCE_YOUR_CALM once its client has reset more streams than the budget allows:
 * `budget` at once, refilled at `budget` per 10 s (a token bucket). A reset here is a stream closed before its
 * response was complete, by the client: a browser cancelling what it no longer needs stays far below that.
 */
export function limitResets(session: ServerHttp2Session, budget: number, onExceeded: (resets: number) => void): void {
  budgets.set(session, { budget, tokens: budget, last: performance.now(), resets: 0, closing: false, onExceeded });
  session.on('stream', watchStream);
}

// Shared listeners, not closures per stream: this runs for every HTTP/2 request.
function watchStream(stream: Http2Stream): void {
  // 'aborted' = the stream closed while its response was still open; the session's own end closes streams too.
  stream.on('aborted', onAborted);
}

function onAborted(this: Http2Stream): void {
  const session = this.session as ServerHttp2Session | undefined;
  const state = session && budgets.get(session);
  if (!session || !state || state.closing || resetByUs.has(this) || session.destroyed) return;
  state.resets++;
  const now = performance.now();
  state.tokens = Math.min(state.budget, state.tokens + ((now - state.last) * state.budget) / RESET_REFILL_MS) - 1;
  state.last = now;
  if (state.tokens >= 0) return;
  state.closing = true;
  state.onExceeded(state.resets);
  // nghttp2 is in the middle of reading frames here: close once it is done.
  process.nextTick(() => {
    if (session.destroyed) return;
    session.goaway(NGHTTP2_ENHANCE_YOUR_CALM);
    session.destroy();
  });
}
