import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { V8_FLAGS, withV8Flags } from '../../../src/runtime/v8-flags.ts';

test("V8 flags: added where the command line does not set them, an operator's own value wins", () => {
  assert.deepEqual(withV8Flags([]), [...V8_FLAGS]);
  assert.deepEqual(withV8Flags(['--inspect']), ['--inspect', ...V8_FLAGS]);
  assert.deepEqual(withV8Flags(['--max-semi-space-size=32']), ['--max-semi-space-size=32']);
  assert.deepEqual(withV8Flags(['--max_semi_space_size=1']), ['--max_semi_space_size=1'], 'V8 accepts _ for -');
});

test('V8 flags: the pinned Node starts with every one of them and accepts them all (Node refuses a wrong one)', () => {
  const run = spawnSync(process.execPath, [...withV8Flags([]), '-p', 'process.execArgv.join(" ")'], {
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stderr, '', 'V8 complained about a flag');
  assert.ok(run.stdout.startsWith(`${V8_FLAGS.join(' ')} -p`), run.stdout);
});
