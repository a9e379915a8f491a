// Before a system is measured, one sample request must come back right: a fast wrong answer (an error page, a
// redirect to a login, a truncated body) would otherwise be measured as a fast system.
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { SMALL_BODY } from './configs.ts';
import type { Scenario, Target } from './types.ts';

/** What the upstream serves at a path: the body every system must relay unchanged. */
function expected(scenario: Scenario, urlPath: string): { length: number; check(body: Buffer): boolean } {
  if (scenario.backend === 'ws-echo') return { length: 8, check: (body) => body.toString() === 'ws echo\n' };
  if (urlPath === '/1mb')
    return { length: 1024 * 1024, check: (body) => body.length === 1024 * 1024 && body.every((b) => b === 0x78) };
  return { length: SMALL_BODY.length, check: (body) => body.toString() === SMALL_BODY };
}

/** One HTTPS/1.1 GET of the scenario's path with the load's headers; throws unless 200 with the upstream's exact body. */
export async function checkSample(scenario: Scenario, target: Target, headers: Record<string, string>): Promise<void> {
  const name = target.names[0]!;
  const want = expected(scenario, scenario.load.path);
  const { status, body } = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    const req = https.get(
      {
        host: '127.0.0.1',
        port: target.port,
        path: scenario.load.path,
        servername: name,
        headers: { host: `${name}:${target.port}`, ...headers },
        ca: fs.readFileSync(path.join(target.dir, 'certs', `${name}.crt`)),
        agent: false,
        timeout: 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 15 s')));
    req.on('error', reject);
  });
  if (status !== 200 || !want.check(body))
    throw new Error(
      `sample request GET ${scenario.load.path}: got ${status} with ${body.length} bytes (${JSON.stringify(body.subarray(0, 60).toString())}), want 200 with the upstream's ${want.length} bytes`,
    );
}
