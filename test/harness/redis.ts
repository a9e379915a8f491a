// A real redis-server (Debian package) for one test: loopback, a free port, no persistence of its own. restart()
// keeps the data (SHUTDOWN SAVE into its private folder, loaded again on start), as a Redis with persistence would;
// pause()/resume() freeze it (SIGSTOP/SIGCONT) so clients see a server that accepts nothing and answers nothing.
// Only this helper's own process is ever signalled, by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './net.ts';
import { WAIT_MS } from './wait.ts';

export interface RedisServer {
  url: string;
  port: number;
  /** The running process's pid (changes on restart). */
  pid(): number;
  stop(): Promise<void>;
  pause(): void;
  resume(): void;
  /** Stops, saving its data (a Redis gone down). */
  down(): Promise<void>;
  /** Starts again on the same port with the data saved by down(). */
  up(): Promise<void>;
  /** down() then up(). */
  restart(): Promise<void>;
  /** One command on a fresh connection (RESP inline), for assertions: e.g. command('DBSIZE'). */
  command(...args: string[]): Promise<string>;
}

export async function startRedis(): Promise<RedisServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-redis-'));
  let port = 0;
  let child: ChildProcess | undefined;
  let paused = false;

  const launch = async (): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      port ||= await freePort();
      const started = spawn(
        'redis-server',
        ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let log = '';
      const ready = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), WAIT_MS);
        started.stdout!.on('data', (chunk: Buffer) => {
          log += chunk;
          if (log.includes('Ready to accept connections')) {
            clearTimeout(timer);
            resolve(true);
          }
        });
        started.once('exit', () => {
          clearTimeout(timer);
          resolve(false);
        });
      });
      if (ready) {
        child = started;
        return;
      }
      started.kill('SIGKILL');
      // The free port was taken between our probe and redis-server's bind: another one (only before the first start).
      if (attempt >= 3 || child !== undefined) throw new Error(`redis-server did not start:\n${log}`);
      port = 0;
    }
  };

  const exited = (process: ChildProcess) =>
    process.exitCode !== null || process.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((resolve) => process.once('exit', () => resolve()));

  const command = (...args: string[]): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      let reply = Buffer.alloc(0);
      socket.setTimeout(WAIT_MS, () => socket.destroy(new Error('redis command timed out')));
      socket.on('data', (chunk) => {
        reply = Buffer.concat([reply, chunk]);
        if (replyEnd(reply, 0) === reply.length) socket.end();
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(reply.toString('utf8').trim()));
      socket.write(`${args.map((a) => JSON.stringify(a)).join(' ')}\r\n`);
    });

  const stopProcess = async (save: boolean): Promise<void> => {
    const running = child;
    if (!running) return;
    if (paused) {
      running.kill('SIGCONT');
      paused = false;
    }
    if (save) await command('SHUTDOWN', 'SAVE').catch(() => {});
    if (running.exitCode === null && running.signalCode === null) running.kill(save ? 'SIGTERM' : 'SIGKILL');
    await exited(running);
    child = undefined;
  };

  await launch();
  return {
    get url() {
      return `redis://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    pid: () => child?.pid ?? 0,
    async stop() {
      await stopProcess(false);
      fs.rmSync(dir, { recursive: true, force: true });
    },
    pause() {
      child?.kill('SIGSTOP');
      paused = true;
    },
    resume() {
      child?.kill('SIGCONT');
      paused = false;
    },
    down: () => stopProcess(true),
    up: launch,
    async restart() {
      await stopProcess(true);
      await launch();
    },
    command,
  };
}

/** Where the RESP reply that starts at byte `at` ends, or -1 while it is incomplete (simple types, bulk strings,
 *  arrays): our own test server's answers, for assertions. */
function replyEnd(bytes: Buffer, at: number): number {
  const line = bytes.indexOf('\r\n', at);
  if (line < 0) return -1;
  const count = Number(bytes.subarray(at + 1, line).toString('latin1'));
  const type = String.fromCharCode(bytes[at]!);
  if (type === '$') return count < 0 ? line + 2 : bytes.length >= line + 2 + count + 2 ? line + 2 + count + 2 : -1;
  if (type !== '*') return line + 2;
  let next = line + 2;
  for (let i = 0; i < count && next >= 0; i++) next = replyEnd(bytes, next);
  return next;
}
