import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RestartBackoff } from '../../../src/runtime/worker-supervision.ts';

test('restart back-off: doubles from 0.5 s up to 30 s while workers die young; a worker that served a minute starts it over', () => {
  const backoff = new RestartBackoff();
  const young = [undefined, 1_000, undefined, 59_999, undefined, undefined, undefined, undefined, 5_000];
  assert.deepEqual(
    young.map((served) => backoff.next(served)),
    [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000],
  );
  assert.equal(backoff.next(60_000), 500, 'the worker had been serving for a minute: the count starts over');
  assert.equal(backoff.next(undefined), 1_000);
  assert.equal(backoff.next(24 * 3600_000), 500, 'one crash after a day of service is restarted at once');
});
