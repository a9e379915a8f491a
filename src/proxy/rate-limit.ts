// nginx limit_req with nodelay (https://nginx.org/en/docs/http/ngx_http_limit_req_module.html), per client address:
// a leaky bucket that drains at `rate`; a request that finds it holding more than `burst` is refused (429), every
// other one is served at once. nginx keeps its buckets in a zone shared by the workers; these live in each worker
// process, so with N workers a client that spreads its connections over them gets up to N times the rate.
// Memory is bounded: the least recently seen addresses are forgotten beyond MAX_ADDRESSES (nginx evicts by LRU too).
import { LRUCache } from 'lru-cache';
import type { RateLimit } from '../config/model.ts';

const MAX_ADDRESSES = 100_000;

interface Bucket {
  /** Requests beyond the rate still in the bucket, at `at`. */
  excess: number;
  at: number;
}

/** One table of buckets per rate_limit setting (a site-level one is shared by the routes that inherit it). */
const tables = new WeakMap<RateLimit, LRUCache<string, Bucket>>();

/** 0 when the request may pass, else the seconds after which one would (for Retry-After). */
export function rateLimited(limit: RateLimit, address: string, now = performance.now()): number {
  let table = tables.get(limit);
  if (!table) {
    table = new LRUCache<string, Bucket>({ max: MAX_ADDRESSES });
    tables.set(limit, table);
  }
  const bucket = table.get(address);
  if (!bucket) {
    table.set(address, { excess: 0, at: now });
    return 0;
  }
  const excess = Math.max(0, bucket.excess - (limit.perSecond * (now - bucket.at)) / 1000 + 1);
  if (excess > limit.burst) return Math.max(1, Math.ceil((excess - limit.burst) / limit.perSecond));
  bucket.excess = excess;
  bucket.at = now;
  return 0;
}
