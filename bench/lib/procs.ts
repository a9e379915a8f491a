// Processes the harness starts: spawned (pinned to a core with taskset when the machine has 2+ cores), awaited
// until their port accepts, measured from /proc, and stopped by pid. Nothing here ever signals a process it did not start.
import { spawn, spawnSync, execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { once } from 'node:events';

// The tests' helper: a free port on 127.0.0.1.
export { freePort } from '../../test/harness/net.ts';

export const CORES = os.availableParallelism();
/** Proxy side on core 0, load generator and backend on core 1 (bench/README.md, "Method"). */
export const PINNED = CORES >= 2;
/**
 * "split": the layout above. "one-core": everything on the last core, leaving the others free — for the smoke test,
 * which runs beside other test files and must not starve them (its figures are not compared).
 */
let layout: 'split' | 'one-core' = 'split';
export function setLayout(value: 'split' | 'one-core'): void {
  layout = value;
}
export function layoutDescription(): string {
  if (!PINNED) return 'not pinned (one core)';
  return layout === 'split'
    ? 'server side pinned to core 0, load generator and upstream on core 1'
    : `everything on core ${CORES - 1} (smoke layout)`;
}
function coreFor(side: Side): string {
  if (layout === 'one-core') return String(CORES - 1);
  return side === 'proxy' ? '0' : '1';
}
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

export type Side = 'proxy' | 'client';

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  log: string[];
}

/** Starts `command args` on the given side's core; stdout/stderr are kept (last lines) for error messages. */
export function start(name: string, side: Side, command: string, args: string[], options: SpawnOptions = {}): Proc {
  const [file, argv] = PINNED ? ['taskset', ['-c', coreFor(side), command, ...args]] : [command, args];
  // taskset execs the command, so the pid we hold is the server's own.
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  const log: string[] = [];
  const keep = (chunk: Buffer) => {
    log.push(...chunk.toString().split('\n').filter(Boolean));
    if (log.length > 40) log.splice(0, log.length - 40);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  return { name, child, pid: child.pid, log };
}

export async function stop(proc: Proc, graceMs = 3000): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  const exited = once(proc.child, 'exit');
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Resolves when 127.0.0.1:port accepts a TCP connection; fails with the process's last output if it exits or times out. */
export async function waitForPort(proc: Proc, port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null)
      throw new Error(`${proc.name} exited (${proc.child.exitCode}):\n${proc.log.join('\n')}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${proc.name} did not listen on ${port} within ${timeoutMs} ms:\n${proc.log.join('\n')}`);
}

/** The pid and its descendants (nginx master + workers; a Node process's threads are already in its own counters). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat) children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), Number(entry)]);
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!) ?? []));
  return tree;
}

/** user+system CPU time in microseconds, summed over the pids (all their threads). */
export function cpuMicros(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + (readStat(pid)?.ticks ?? 0), 0) * (1e6 / CLK_TCK);
}

/** The cores the started processes run on, whose /proc/stat counters measure foreign load (all when not pinned). */
export function measuredCores(): number[] {
  if (!PINNED) return Array.from({ length: CORES }, (_, i) => i);
  return layout === 'one-core' ? [CORES - 1] : [0, 1];
}

/**
 * Busy CPU time of the given cores in microseconds, from /proc/stat (proc(5)): user + nice + system + irq + softirq +
 * steal. Guest time is already inside user. Steal counts as busy: it is CPU the host gave to someone else.
 */
export function coresBusyMicros(cores: readonly number[]): number {
  const wanted = new Set(cores.map((core) => `cpu${core}`));
  let ticks = 0;
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    const fields = line.split(' ');
    if (!wanted.has(fields[0]!)) continue;
    const [user, nice, system, , , irq, softirq, steal] = fields.slice(1).map(Number) as number[];
    ticks += user! + nice! + system! + irq! + softirq! + steal!;
  }
  return ticks * (1e6 / CLK_TCK);
}

/**
 * The harness's own CPU in microseconds: its threads (user+system) and every child it has already reaped (cutime +
 * cstime): a load generator that ran during the window has exited and been reaped by the time the window closes.
 */
export function harnessMicros(): number {
  const text = fs.readFileSync('/proc/self/stat', 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * (1e6 / CLK_TCK);
}

/** Current resident set (VmRSS) in bytes, summed over the pids. */
export function rssBytes(pids: readonly number[]): number {
  return sumStatus(pids, /^VmRSS:\s+(\d+) kB$/m);
}

/** Peak resident set (VmHWM) in bytes, summed over the pids. */
export function peakRssBytes(pids: readonly number[]): number {
  return sumStatus(pids, /^VmHWM:\s+(\d+) kB$/m);
}

function sumStatus(pids: readonly number[], field: RegExp): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const match = field.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      total += match ? Number(match[1]) * 1024 : 0;
    } catch {
      /* exited */
    }
  }
  return total;
}

function readStat(pid: number): { ppid: number; ticks: number } | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself contain spaces and parentheses: see proc(5).
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined;
  }
}

/** The first line a command prints (stdout or stderr: `nginx -v` writes to stderr), or undefined when it is not installed. */
export function versionOf(command: string, args: string[]): string | undefined {
  const result = spawnSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  if (result.error) return undefined;
  return `${result.stdout.toString()}\n${result.stderr.toString()}`.trim().split('\n')[0];
}
