// What one cached session costs in memory. A browser's Cookie header carries every cookie of the site (analytics,
// preferences, …), often kilobytes; the session cookie read from it is a slice of that header, and in V8 a slice keeps
// the whole string it was cut from alive. A cache key made from it would hold one Cookie header per session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import { readCookie } from '../../../src/session/cookies.ts';
import { openSessionStore } from '../../../src/session/store.ts';
import { SiteSessions } from '../../../src/session/sessions.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const SESSIONS = 2_000;
/** Other cookies of the site in every request, as a browser sends them. */
const OTHER_COOKIES_BYTES = 8_000;

function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

test('a cached session keeps none of the Cookie header it was read from', async () => {
  const store = openSessionStore('memory', '');
  const secret = crypto.randomBytes(32);
  const writer = new SiteSessions('app', secret, '__Host-s', store, 1);
  const cookies: string[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    const email = `user${i}@example.test`;
    const session = await writer.create(
      { identity: { user: email, email, preferredUsername: email, sub: `sub-${i}`, groups: [], roles: [] } },
      3_600_000,
    );
    cookies.push(writer.cookieValue(session));
  }
  const reader = new SiteSessions('app', secret, '__Host-s', store, SESSIONS);
  const before = heapAfterGc();
  for (let i = 0; i < SESSIONS; i++) {
    // A fresh header per request, as the HTTP parser makes them; it is garbage once the request is over.
    const header = `_ga=${'x'.repeat(OTHER_COOKIES_BYTES)}${i}; __Host-s=${cookies[i]}; theme=dark`;
    assert.ok(await reader.fromCookie(readCookie(header, '__Host-s')), `session ${i} is found`);
  }
  const perSession = (heapAfterGc() - before) / SESSIONS;
  // Measured: ≈ 700 bytes per session (the session, its identity, the cache entries); 8 KB more while each entry
  // kept its Cookie header.
  assert.ok(perSession < 2_500, `one cached session costs ${Math.round(perSession)} bytes of heap`);
  assert.ok(reader.fromCookie(cookies[0]), 'the sessions measured are still cached');
});
