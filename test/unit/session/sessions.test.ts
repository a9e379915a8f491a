// The session cache keeps only the tokens a site's requests send upstream; the rest stay in the store (encrypted)
// and come back whole for refresh and logout, also across a restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openSessionStore } from '../../../src/session/store.ts';
import { SiteSessions } from '../../../src/session/sessions.ts';

const identity = { user: 'alice@example.test', email: 'alice@example.test', sub: 'alice', groups: [], roles: [] };
const tokens = { accessToken: 'access-token', idToken: 'id-token', refreshToken: 'refresh-token' };

test('the cache holds only the tokens sent upstream; the store keeps all of them, encrypted', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-sessions-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sessions.sqlite');
  const secret = crypto.randomBytes(32);
  const store = openSessionStore('sqlite', file);
  const open = (inMemory: { accessToken: boolean; idToken: boolean }) =>
    new SiteSessions('app', secret, '__Host-s', store, 100, { inMemory });

  const sessions = open({ accessToken: true, idToken: false });
  const created = await sessions.create({ identity, ...tokens }, 60_000);
  const cookie = sessions.cookieValue(created);
  sessions.dropCache();
  const cached = (await sessions.fromCookie(cookie))!;
  assert.equal(cached.accessToken, 'access-token');
  assert.equal(cached.idToken, undefined, 'the ID token is not kept in memory');
  assert.equal('refreshToken' in cached, false, 'the refresh token is never kept in memory');
  assert.equal(cached.refreshable, true);
  assert.deepEqual(await sessions.tokens(cached), tokens);

  // Saving a changed session without new tokens keeps the stored ones.
  await sessions.save({ ...cached, refreshedAt: 1 });
  assert.deepEqual(await sessions.tokens(cached), tokens);

  // Nothing passed upstream: no token in memory at all.
  const lean = (await open({ accessToken: false, idToken: false }).fromCookie(cookie))!;
  assert.equal(lean.accessToken, undefined);
  assert.equal(lean.refreshable, true);
  // The ID token as Bearer: kept.
  assert.equal((await open({ accessToken: false, idToken: true }).fromCookie(cookie))!.idToken, 'id-token');

  // At rest the tokens are sealed: none of them appears in the database file.
  store.close();
  const raw =
    fs.readFileSync(file).toString('latin1') +
    (fs.existsSync(`${file}-wal`) ? fs.readFileSync(`${file}-wal`).toString('latin1') : '');
  for (const value of Object.values(tokens))
    assert.equal(raw.includes(value), false, `${value} is not stored in clear`);
});

test('a cached session answers at once; the store is asked (a promise) only when it has a say', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-sessions-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const store = openSessionStore('sqlite', path.join(dir, 'sessions.sqlite'));
  const secret = crypto.randomBytes(32);
  const sessions = new SiteSessions('app', secret, '__Host-s', store, 100);
  const created = await sessions.create({ identity, ...tokens }, 60_000);
  const cookie = sessions.cookieValue(created);

  const hot = sessions.fromCookie(cookie);
  assert.ok(!(hot instanceof Promise), 'a cached session of a store nobody else writes: no promise');
  assert.equal(hot, created);
  assert.equal(sessions.fromCookie(`${cookie.slice(0, 44)}${'A'.repeat(43)}`), undefined, 'a forged signature');

  sessions.dropCache();
  const cold = sessions.fromCookie(cookie);
  assert.ok(cold instanceof Promise, 'not cached: read from the store');
  assert.equal((await cold)?.id, created.id);
  assert.ok(!(sessions.fromCookie(cookie) instanceof Promise), 'cached again');

  // Past its end it is no session, and the store is told.
  const late = sessions.fromCookie(cookie, created.expiresAt + 1);
  assert.equal(await late, undefined);
  assert.equal(store.version(sessions.key(created)), undefined, 'the expired session is deleted');

  // Workers sharing the file: every use checks the stored version (another worker may have changed it).
  const shared = new SiteSessions('app', secret, '__Host-s', store, 100, { shared: true });
  const other = await shared.create({ identity, ...tokens }, 60_000);
  const checked = shared.fromCookie(shared.cookieValue(other));
  assert.ok(checked instanceof Promise);
  assert.equal((await checked)?.id, other.id);
});
