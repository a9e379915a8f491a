// What the TLS layer offers, probed from outside with openssl s_client and Node's client: Mozilla's "intermediate"
// cipher suites only (forward secrecy and AEAD in TLS 1.2), and no renegotiation.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import tls from 'node:tls';
import { test } from 'node:test';
import { startEchoUpstream } from '../harness/echo-upstream.ts';
import { siteToml, startGatehouse } from '../harness/gatehouse.ts';
import { sClient } from '../harness/openssl.ts';
import { createTestCa } from '../harness/pki.ts';

const ca = createTestCa();
const ecCert = ca.issue(['ec.test']);
const rsaCert = ca.issue(['rsa.test'], 'rsa', 'rsa');

async function twoKeyTypes(t: import('node:test').TestContext) {
  const backend = await startEchoUpstream();
  t.after(() => backend.close());
  return startGatehouse(t, {
    sites: { ec: siteToml(['ec.test'], ecCert, backend.url), rsa: siteToml(['rsa.test'], rsaCert, backend.url) },
  });
}

/** Runs the jobs at most `width` at a time (each one spawns openssl). */
async function pooled<T>(jobs: Array<() => Promise<T>>, width = 6): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < jobs.length) {
        const i = next++;
        results[i] = await jobs[i]!();
      }
    }),
  );
  return results;
}

test('TLS 1.2 offers only ECDHE with AES-GCM or ChaCha20-Poly1305 (Mozilla intermediate), for ECDSA and RSA certificates; TLS 1.3 keeps its three suites', async (t) => {
  const gh = await twoKeyTypes(t);
  // Every TLS 1.2 suite this openssl knows (security level 0: the legacy ones too), offered one at a time.
  const suites = execFileSync('openssl', ['ciphers', '-tls1_2', 'ALL:COMPLEMENTOFALL:!PSK:!SRP:!aNULL:@SECLEVEL=0'], {
    encoding: 'utf8',
  })
    .trim()
    .split(':')
    .filter((name) => !name.startsWith('TLS_'));
  for (const legacy of [
    'AES128-SHA',
    'AES128-GCM-SHA256',
    'AES256-SHA256',
    'ECDHE-RSA-AES128-SHA',
    'ECDHE-ECDSA-AES128-SHA',
    'ECDHE-RSA-AES128-SHA256',
    'ARIA128-GCM-SHA256',
    'ECDHE-ARIA128-GCM-SHA256',
    'DHE-RSA-AES128-GCM-SHA256',
  ]) {
    assert.ok(suites.includes(legacy), `openssl offers ${legacy} to test against`);
  }
  const accepted = async (servername: string) => {
    const outcomes = await pooled(
      suites.map((suite) => async () => {
        const { code, output } = await sClient(gh.port, [
          '-tls1_2',
          '-servername',
          servername,
          '-cipher',
          `${suite}:@SECLEVEL=0`,
          '-CAfile',
          ca.caFile,
        ]);
        return code === 0 && output.includes(`Cipher is ${suite}`) ? suite : undefined;
      }),
    );
    return outcomes.filter((suite) => suite !== undefined).sort();
  };
  assert.deepEqual(
    { ecdsa: await accepted('ec.test'), rsa: await accepted('rsa.test') },
    {
      ecdsa: ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305'],
      rsa: ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305'],
    },
  );
  for (const suite of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']) {
    const { code, output } = await sClient(gh.port, [
      '-tls1_3',
      '-servername',
      'rsa.test',
      '-ciphersuites',
      suite,
      '-CAfile',
      ca.caFile,
    ]);
    assert.equal(code, 0, output);
    assert.match(output, new RegExp(`New, TLSv1\\.3, Cipher is ${suite}`));
  }
});

test("a client's TLS 1.2 renegotiation is refused with a no_renegotiation alert", async (t) => {
  const gh = await twoKeyTypes(t);
  const socket = tls.connect({
    host: '127.0.0.1',
    port: gh.port,
    ca: ca.caPem,
    servername: 'ec.test',
    maxVersion: 'TLSv1.2',
    ALPNProtocols: ['http/1.1'],
  });
  await new Promise((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  const outcome = await new Promise<string>((resolve) => {
    // A refused renegotiation ends the connection with an error and may never call back; an allowed one calls back.
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(`refused: ${error.code}`));
    const started = socket.renegotiate({}, (error) =>
      resolve(error ? `refused: ${(error as NodeJS.ErrnoException).code}` : 'renegotiated'),
    );
    if (!started) resolve('not started');
  });
  socket.destroy();
  assert.equal(outcome, 'refused: ERR_SSL_NO_RENEGOTIATION');
  // The server is unharmed: the next connection is served.
  const { output } = await sClient(
    gh.port,
    ['-tls1_2', '-servername', 'ec.test', '-CAfile', ca.caFile, '-ign_eof'],
    'GET / HTTP/1.1\r\nHost: ec.test\r\nConnection: close\r\n\r\n',
  );
  assert.match(output, /HTTP\/1\.1 200/);
});
