// Recovery from what goes wrong between runs or behind Gatehouse's back, against real Pebble and checked by real TLS
// handshakes: a stored pair damaged while serving.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { Gatehouse } from '../helpers/gatehouse-acme.ts';
import { acmeScenario, presented } from './setup.ts';

/** Bounded wait for an ACME event, so a fault that never recovers fails the test with its log instead of hanging it. */
async function next<E extends 'installed' | 'failed'>(gatehouse: Gatehouse, event: E, ms = 60_000) {
  try {
    return await once(gatehouse.acme!.events, event, { signal: AbortSignal.timeout(ms) });
  } catch (error) {
    throw new Error(`no "${event}" event within ${ms / 1000} s; log:\n${gatehouse.logs().map((l) => JSON.stringify(l)).join('\n')}`, { cause: error });
  }
}

test('a stored certificate damaged while serving is replaced by a new order at once', async (t) => {
  const { pebble, dir, gatehouse } = await acmeScenario(t, { acme: { check_interval: '"1h"' } });
  const [, first] = await next(gatehouse, 'installed');
  const domainDir = path.join(dir, 'certs', 'app.test');
  const renewed = next(gatehouse, 'installed');
  const chain = fs.readFileSync(path.join(domainDir, 'fullchain.pem'), 'utf8');
  fs.writeFileSync(path.join(domainDir, 'fullchain.pem'), chain.slice(0, 300)); // truncated in place

  const [, second, origin] = await renewed;
  assert.equal(origin, 'order', 'a new certificate was ordered');
  assert.notEqual(second.serial, first.serial);
  const line = gatehouse.logs().find((l) => l.msg === 'stored certificate is unusable; keeping the one in service and ordering a new one');
  assert.ok(line, 'the damage is logged');
  assert.match(String(line.reason), /truncated/);
  assert.equal((await presented(gatehouse.httpsPort, 'app.test', await pebble.rootPem())).serial, second.serial);
  assert.match(fs.readFileSync(path.join(domainDir, 'fullchain.pem'), 'utf8'), /END CERTIFICATE/, 'storage holds a valid pair again');
});
