// Runs one load generator for a fixed time against a target and parses what it prints. Every generator runs
// on the client core, against 127.0.0.1 only, and is killed if it overruns its time by 15 s.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { start } from './procs.ts';
import { percentile } from './stats.ts';
import type { LoadResult, LoadSpec, Target } from './types.ts';

const CLIENTS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'clients');

/**
 * `cookies`: Cookie values to rotate through, one per request (wrk only, through clients/rotate-cookies.lua).
 * `rate`: the total requests per second an open-loop load offers (h2load `openLoop` specs need it).
 */
export async function runLoad(
  spec: LoadSpec,
  target: Target,
  seconds: number,
  headers: Record<string, string>,
  cookies?: string[],
  rate?: number,
): Promise<LoadResult> {
  const host = target.names[0]!; // "localhost", which /etc/hosts maps to 127.0.0.1 (wrk and h2load take SNI from the URL)
  const url = `https://${host}:${target.port}${spec.path}`;
  const sent = cookies
    ? Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== 'cookie'))
    : headers;
  const headerArgs = Object.entries(sent).flatMap(([name, value]) => ['-H', `${name}: ${value}`]);
  if (cookies && spec.tool !== 'wrk') throw new Error(`rotating cookies needs wrk, not ${spec.tool}`);
  switch (spec.tool) {
    case 'wrk': {
      const scratch = cookies ? fs.mkdtempSync(path.join(os.tmpdir(), 'bench-wrk-')) : undefined;
      try {
        const script = scratch ? ['-s', path.join(CLIENTS, 'rotate-cookies.lua')] : [];
        if (scratch) fs.writeFileSync(path.join(scratch, 'cookies.txt'), `${cookies!.join('\n')}\n`);
        const args = [
          '-t1',
          `-c${spec.connections}`,
          `-d${seconds}s`,
          '--timeout',
          '5s',
          '--latency',
          ...script,
          ...headerArgs,
          ...(spec.close ? ['-H', 'Connection: close'] : []),
          url,
          ...(scratch ? ['--', path.join(scratch, 'cookies.txt')] : []),
        ];
        return parseWrk(await output('wrk', args, seconds));
      } finally {
        if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
      }
    }
    case 'h2load': {
      if (spec.openLoop && !(rate !== undefined && rate > 0)) throw new Error('an open-loop load needs a rate');
      const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-h2load-')), 'requests.tsv');
      try {
        const args = [
          '-t1',
          `-c${spec.connections}`,
          `-m${spec.streams}`,
          `-D${seconds}`,
          ...(spec.h1 ? ['--h1'] : []),
          // --rps is per connection: each one starts a request every connections/rate seconds while it has fewer
          // than -m in flight. One that falls due on a busy connection waits in h2load, and that wait is not in its
          // latency: the achieved rate falling short of the offered one is the sign (the report shows both).
          ...(spec.openLoop ? [`--rps=${(rate! / spec.connections).toFixed(3)}`] : []),
          ...headerArgs,
          `--log-file=${log}`,
          url,
        ];
        const result = parseH2load(await output('h2load', args, seconds), fs.readFileSync(log, 'utf8'));
        return spec.openLoop ? { ...result, offeredRps: rate } : result;
      } finally {
        fs.rmSync(path.dirname(log), { recursive: true, force: true });
      }
    }
    case 'tls-loop':
    case 'ws-echo': {
      const script = path.join(CLIENTS, `${spec.tool}.ts`);
      const options = { ...spec, port: target.port, names: target.names, seconds, headers };
      return JSON.parse(await output(process.execPath, [script, JSON.stringify(options)], seconds)) as LoadResult;
    }
  }
}

async function output(command: string, args: string[], seconds: number): Promise<string> {
  const proc = start(command, 'client', command, args);
  let stdout = '';
  proc.child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  let overran = false;
  const timer = setTimeout(
    () => {
      overran = true;
      proc.child.kill('SIGKILL');
    },
    (seconds + 15) * 1000,
  );
  const code = await new Promise<number | null>((resolve) => proc.child.on('close', resolve));
  clearTimeout(timer);
  const why = overran ? `overran its ${seconds} s by 15 s and was killed` : `failed (${code})`;
  if (code !== 0)
    throw Object.assign(new Error(`${command} ${args.join(' ')} ${why}:\n${proc.log.slice(-10).join('\n')}`), {
      overran,
    });
  return stdout;
}

/** The load generator hung past its time (h2load sometimes does after "Stopped all clients") and was killed. */
export function overran(error: unknown): boolean {
  return (error as { overran?: boolean }).overran === true;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

export function parseWrk(text: string): LoadResult {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(text);
  if (!total) throw new Error(`unexpected wrk output:\n${text}`);
  const latency = (q: string) => {
    const match = new RegExp(`^\\s+${q}%\\s+([\\d.]+)(us|ms|s|m)$`, 'm').exec(text);
    return match ? Number(match[1]) * UNIT_MS[match[2]!]! : undefined;
  };
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  const errors =
    (socketErrors ? socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0) +
    (non2xx ? Number(non2xx[1]) : 0);
  return {
    requests: Number(total[1]),
    seconds: (Number(total[2]) * UNIT_MS[total[3]!]!) / 1000,
    errors,
    p50Ms: latency('50'),
    p99Ms: latency('99'),
  };
}

/** h2load prints no percentiles, so they come from its per-request log (start µs, status, duration µs). */
export function parseH2load(text: string, log: string): LoadResult {
  const finished = /finished in ([\d.]+)(us|ms|s|m), ([\d.]+) req\/s/.exec(text);
  const requests =
    /requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(text);
  const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text);
  if (!finished || !requests || !status) throw new Error(`unexpected h2load output:\n${text}`);
  const durations = log
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split('\t'))
    .filter((cols) => cols[1] !== '-1')
    .map((cols) => Number(cols[2]) / 1000)
    .sort((a, b) => a - b);
  const ok = Number(status[1]);
  return {
    requests: ok,
    seconds: (Number(finished[1]) * UNIT_MS[finished[2]!]!) / 1000,
    errors:
      Number(requests[1]) +
      Number(requests[2]) +
      Number(requests[3]) +
      Number(status[2]) +
      Number(status[3]) +
      Number(status[4]),
    p50Ms: percentile(durations, 0.5),
    p99Ms: percentile(durations, 0.99),
  };
}
