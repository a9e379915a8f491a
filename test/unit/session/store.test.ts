// With workers > 1 every worker opens the session database at the same moment. On a fresh file they all create the
// schema and switch it to WAL at once: none of them may fail with "database is locked". Several real processes
// (SQLite's locks are per process) open a fresh database together, round after round.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

const PROCESSES = 6;
const ROUNDS = 40;
const STORE = path.resolve(import.meta.dirname, '../../../src/session/store.ts');

// Each child waits for a file name, then opens the store there, writes and reads one row, and answers.
const CHILD = `
const { openSessionStore } = await import(${JSON.stringify(STORE)});
process.on('message', (file) => {
  try {
    const store = openSessionStore('sqlite', file);
    const key = String(process.pid);
    store.put({ key, site: 'app', expiresAt: Date.now() + 60000, version: 1, data: Buffer.from('x') });
    const ok = store.get(key) !== undefined;
    store.close();
    process.send(ok ? 'ok' : 'row missing');
  } catch (error) {
    process.send(String(error.message));
  }
});
process.send('ready');
`;

test(
  'several processes open one fresh session database at once, round after round: none fails',
  { timeout: 120_000 },
  async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-store-open-'));
    const children: ChildProcess[] = [];
    t.after(() => {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const next = (child: ChildProcess) => once(child, 'message').then(([message]) => String(message));
    for (let i = 0; i < PROCESSES; i++) {
      children.push(
        spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        }),
      );
    }
    assert.deepEqual(await Promise.all(children.map(next)), Array(PROCESSES).fill('ready'));

    const failures: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const file = path.join(dir, `round-${round}`, 'sessions.sqlite');
      const answers = children.map(next);
      for (const child of children) child.send(file);
      for (const answer of await Promise.all(answers)) if (answer !== 'ok') failures.push(`round ${round}: ${answer}`);
    }
    assert.deepEqual(failures, [], `${failures.length} of ${PROCESSES * ROUNDS} opens failed`);
  },
);
