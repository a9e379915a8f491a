// HTTP-01 challenge tokens and their responder on the plain-HTTP listener.
// Tokens live in memory and in <storage>/challenges/<token>, so any Gatehouse process sharing the storage folder
// (or `gatehouse certs renew` run beside a serving process) can answer the CA. A token stays until its order is done:
// the CA validates from several vantage points, each one a separate GET (RFC 8555 §8.3).
import fs from 'node:fs';
import path from 'node:path';
import { sendError } from '../http/errors.ts';
import { common } from '../http/types.ts';
import type { PlainHttpResponder } from '../runtime/runtime.ts';
import { writeFileAtomic } from '../runtime/atomic-write.ts';

const PREFIX = '/.well-known/acme-challenge/';
/** base64url, as RFC 8555 §8.3 requires of tokens; anything else never reaches the file system. */
const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;

export class ChallengeStore {
  private readonly tokens = new Map<string, string>();
  private readonly dir: string;
  constructor(storageDir: string) { this.dir = path.join(storageDir, 'challenges'); }

  add(token: string, keyAuthorization: string): void {
    if (!TOKEN.test(token)) throw new Error(`the CA sent a malformed challenge token: ${JSON.stringify(token)}`);
    this.tokens.set(token, keyAuthorization);
    writeFileAtomic(path.join(this.dir, token), keyAuthorization, 0o644);
  }

  remove(token: string): void {
    this.tokens.delete(token);
    if (TOKEN.test(token)) fs.rmSync(path.join(this.dir, token), { force: true });
  }

  get(token: string): string | undefined {
    if (!TOKEN.test(token)) return undefined;
    const own = this.tokens.get(token);
    if (own !== undefined) return own;
    try { return fs.readFileSync(path.join(this.dir, token), 'utf8'); } catch { return undefined; }
  }
}

/** Answers GET /.well-known/acme-challenge/<token> for any Host (with or without a port); unknown tokens get 404. */
export function createChallengeResponder(store: ChallengeStore): PlainHttpResponder {
  return (req, res, requestId) => {
    const url = req.url ?? '';
    if (!url.startsWith(PREFIX)) return false;
    const token = url.slice(PREFIX.length).split('?')[0]!;
    const keyAuthorization = req.method === 'GET' || req.method === 'HEAD' ? store.get(token) : undefined;
    if (keyAuthorization === undefined) {
      sendError(req, res, 'ERR_ACME_UNKNOWN_TOKEN', requestId);
      return true;
    }
    common(res).writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(keyAuthorization), 'cache-control': 'no-store' });
    common(res).end(req.method === 'HEAD' ? '' : keyAuthorization);
    return true;
  };
}
