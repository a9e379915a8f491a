// HTTP-01 challenge tokens and their responder on the plain-HTTP listener.
// Tokens live in memory and in <storage>/challenges/<token>, so any Gatehouse process sharing the storage folder
// (or `gatehouse certs renew` run beside a serving process) can answer the CA. A token stays until its order is done:
// the CA validates from several vantage points, each one a separate GET (RFC 8555 §8.3). Then it is removed, also when
// the order fails or the process exits; what a killed process left is swept once it is stale.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sendOwn } from '../base/own-answer.ts';
import { sendError } from '../base/errors.ts';
import type { PlainHttpResponder } from '../base/types.ts';
import { writeFileAtomic } from '../base/atomic-write.ts';
import type { ChallengeTokens } from './store.ts';

const PREFIX = '/.well-known/acme-challenge/';
/** base64url, as RFC 8555 §8.3 requires of tokens; anything else never reaches the file system. */
export const CHALLENGE_TOKEN = /^[A-Za-z0-9_-]{1,256}$/;
const TOKEN = CHALLENGE_TOKEN;

/** A token file nobody has touched for this long belongs to an order whose process is gone (killed, crashed): the
 *  process running an order touches its files every staleMs / 4, however long the CA takes. As the order lock. */
export const STALE_CHALLENGE_MS = 15 * 60_000;

export class ChallengeStore implements ChallengeTokens {
  private readonly tokens = new Map<string, string>();
  private readonly dir: string;
  private readonly staleMs: number;
  private heartbeat?: NodeJS.Timeout;

  constructor(storageDir: string, staleMs = STALE_CHALLENGE_MS) {
    this.dir = path.join(storageDir, 'challenges');
    this.staleMs = staleMs;
  }

  add(token: string, keyAuthorization: string): void {
    if (!TOKEN.test(token)) throw new Error(`the CA sent a malformed challenge token: ${JSON.stringify(token)}`);
    this.tokens.set(token, keyAuthorization);
    if (this.tokens.size === 1) {
      this.heartbeat = setInterval(() => this.touch(), Math.max(this.staleMs / 4, 50)).unref();
      process.on('exit', this.removeOwn); // a process stopped mid-order leaves no token behind
    }
    writeFileAtomic(path.join(this.dir, token), keyAuthorization, 0o644);
  }

  remove(token: string): void {
    if (!this.tokens.delete(token)) return;
    fs.rmSync(path.join(this.dir, token), { force: true });
    if (this.tokens.size === 0) {
      clearInterval(this.heartbeat);
      process.off('exit', this.removeOwn);
    }
  }

  get(token: string): string | undefined {
    if (!TOKEN.test(token)) return undefined;
    const own = this.tokens.get(token);
    if (own !== undefined) return own;
    try {
      return fs.readFileSync(path.join(this.dir, token), 'utf8');
    } catch {
      return undefined;
    }
  }

  /** Removes what killed orders left in challenges/ (token files and half-written ones) untouched for staleMs;
   *  another live process's tokens are touched more often than that. Returns the names removed. */
  sweep(now = Date.now()): string[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const removed: string[] = [];
    for (const name of names) {
      if (this.tokens.has(name)) continue;
      const file = path.join(this.dir, name);
      try {
        if (now - fs.statSync(file).mtimeMs <= this.staleMs) continue;
        fs.rmSync(file, { force: true });
        removed.push(name);
      } catch {
        /* removed meanwhile by another process */
      }
    }
    return removed;
  }

  private touch(): void {
    const now = new Date();
    for (const token of this.tokens.keys())
      try {
        fs.utimesSync(path.join(this.dir, token), now, now);
      } catch {
        /* gone */
      }
  }

  private readonly removeOwn = (): void => {
    for (const token of this.tokens.keys()) fs.rmSync(path.join(this.dir, token), { force: true });
  };
}

/** Answers GET /.well-known/acme-challenge/<token> for any Host (with or without a port); unknown tokens get 404,
 *  and a shared store that cannot be reached 503 (the CA retries; Let's Encrypt validates from several places). */
export function createChallengeResponder(store: ChallengeTokens): PlainHttpResponder {
  return (req, res, requestId) => {
    const url = req.url ?? '';
    if (!url.startsWith(PREFIX)) return false;
    const token = url.slice(PREFIX.length).split('?')[0]!;
    const answer = (keyAuthorization: string | undefined) => {
      if (keyAuthorization === undefined) return sendError(req, res, 'ERR_ACME_UNKNOWN_TOKEN', requestId);
      sendOwn(res, 200, requestId, {
        body: { type: 'text', text: keyAuthorization },
        omitBody: req.method === 'HEAD',
      });
    };
    const found = req.method === 'GET' || req.method === 'HEAD' ? store.get(token) : undefined;
    if (found instanceof Promise)
      found.then(answer, () => sendError(req, res, 'ERR_ACME_STORE_UNAVAILABLE', requestId));
    else answer(found);
    return true;
  };
}

export interface ProbeTarget {
  host: string;
  port: number;
}

/** GETs the token the way the CA will (RFC 8555 §8.3) from one address: true when the key authorization comes back. */
export function answers(
  target: ProbeTarget,
  domain: string,
  token: string,
  keyAuthorization: string,
  timeoutMs = 5_000,
): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(
      {
        host: target.host,
        port: target.port,
        path: `${PREFIX}${token}`,
        headers: { host: domain },
        timeout: timeoutMs,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
          if (body.length > 4096) req.destroy();
        });
        res.on('end', () => resolve(res.statusCode === 200 && body === keyAuthorization));
        res.on('error', () => resolve(false));
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/** Asks the targets until one answers the token (true), or waitMs passed (false); a stop (signal) ends it at once. */
export async function waitUntilAnswered(
  targets: readonly ProbeTarget[],
  domain: string,
  token: string,
  keyAuthorization: string,
  options: { waitMs: number; signal?: AbortSignal; onWaiting?: () => void },
): Promise<boolean> {
  const deadline = Date.now() + options.waitMs;
  for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
    for (const target of targets) if (await answers(target, domain, token, keyAuthorization)) return true;
    if (Date.now() >= deadline) return false;
    if (delay === 100) options.onWaiting?.();
    await sleep(Math.min(delay, Math.max(deadline - Date.now(), 0)), undefined, { signal: options.signal });
  }
}
