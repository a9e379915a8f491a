// What the report says about where it ran, and the single executable's start-up time to its first served request.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { writeGatehouseConfig } from './configs.ts';
import { CORES, PINNED, freePort, start, stop, versionOf } from './procs.ts';

export function machineDescription(): { text: string; facts: Record<string, string | number | boolean | undefined> } {
  const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1];
  const facts = {
    cpu,
    cores: CORES,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    os: /PRETTY_NAME="([^"]+)"/.exec(
      fs.existsSync('/etc/os-release') ? fs.readFileSync('/etc/os-release', 'utf8') : '',
    )?.[1],
    pinned: PINNED,
    node: `${process.version} (OpenSSL ${process.versions.openssl})`,
    nginx: versionOf('nginx', ['-v']) ?? versionOf('/usr/sbin/nginx', ['-v']),
    caddy: versionOf('caddy', ['version']),
    wrk: versionOf('wrk', ['-v']),
    h2load: versionOf('h2load', ['--version']),
  };
  const text =
    `Machine: ${facts.cpu}, ${facts.cores} cores, ${facts.memoryGb} GiB, ${facts.os}, kernel ${facts.kernel}\n` +
    `Software: Node ${facts.node}; ${facts.nginx ?? 'nginx missing'}; Caddy ${facts.caddy ?? 'missing'}; ${facts.wrk ?? 'wrk missing'}; ${facts.h2load ?? 'h2load missing'}\n`;
  return { text, facts };
}

/** Milliseconds from spawning the binary to the first proxied 200 (median of 3). */
export async function measureStartup(
  binary: string,
  runDir: string,
  certDir: string,
): Promise<{ ms: number; sizeMb: number }> {
  const upstream = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const times: number[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const dir = path.join(runDir, `startup-${i}`);
      const port = await freePort();
      writeGatehouseConfig({
        dir,
        port,
        upstreamPort: (upstream.address() as { port: number }).port,
        names: ['localhost'],
        certDir,
      });
      const started = performance.now();
      const proc = start('gatehouse binary', 'proxy', binary, ['serve', '--config', dir], { env: {} });
      try {
        while (!(await ok(port))) {
          if (proc.child.exitCode !== null || performance.now() - started > 15_000)
            throw new Error(`gatehouse binary did not serve:\n${proc.log.join('\n')}`);
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
        times.push(performance.now() - started);
      } finally {
        await stop(proc);
      }
    }
  } finally {
    upstream.close();
  }
  return { ms: times.sort((a, b) => a - b)[1]!, sizeMb: fs.statSync(binary).size / 1e6 };
}

function ok(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    https
      .get(
        {
          host: '127.0.0.1',
          port,
          servername: 'localhost',
          headers: { host: 'localhost' },
          rejectUnauthorized: false,
          agent: false,
        },
        (res) => {
          res.resume().on('end', () => resolve(res.statusCode === 200));
        },
      )
      .on('error', () => resolve(false));
  });
}
