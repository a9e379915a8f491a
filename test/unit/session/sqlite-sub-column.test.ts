// A session file made before sessions were indexed by subject (back-channel logout) gets the column when opened:
// its sessions stay, new ones carry their sub, and logout by sub finds them.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { openSessionStore } from '../../../src/session/store.ts';

test('an older SQLite session file gains the sub column; its rows stay; delete by sub works', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-sub-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sessions.sqlite');
  const old = new DatabaseSync(file);
  old.exec(`CREATE TABLE sessions (key TEXT PRIMARY KEY, site TEXT NOT NULL, expires_at INTEGER NOT NULL, sid TEXT,
    version INTEGER NOT NULL DEFAULT 0, refresh_until INTEGER NOT NULL DEFAULT 0, data BLOB NOT NULL);
    INSERT INTO sessions (key, site, expires_at, sid, version, data) VALUES ('old', 'app', ${Date.now() + 60_000}, 's0', 1, x'00');`);
  old.close();

  const store = openSessionStore('sqlite', file);
  t.after(() => store.close());
  const kept = await store.get('old');
  assert.equal(kept?.sid, 's0');
  assert.equal(kept?.sub, undefined);
  const row = { site: 'app', expiresAt: Date.now() + 60_000, version: 1, data: Buffer.from('x') };
  store.put({ ...row, key: 'a1', sid: 's1', sub: 'alice' });
  store.put({ ...row, key: 'a2', sid: 's2', sub: 'alice' });
  store.put({ ...row, key: 'b1', sid: 's3', sub: 'bob' });
  store.put({ ...row, key: 'x1', site: 'other', sub: 'alice' });
  assert.equal((await store.get('a1'))?.sub, 'alice');
  assert.deepEqual((await store.deleteBySub('app', 'alice')).sort(), ['a1', 'a2']);
  assert.equal(await store.get('a1'), undefined);
  assert.ok(await store.get('b1'));
  assert.ok(await store.get('x1'), 'another site is untouched');
  assert.ok(await store.get('old'));
  // Opening it again (another worker, a restart) finds the column there.
  openSessionStore('sqlite', file).close();
});
