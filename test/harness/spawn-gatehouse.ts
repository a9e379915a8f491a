// `gatehouse <args>` as a real child process (Node 24, from source), its JSON log lines collected as they come.
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { WAIT_MS } from './wait.ts';

export const MAIN = path.resolve(import.meta.dirname, '../../src/main.ts');

/** `env` is added to this process's environment. */
export function spawnGatehouse(args: string[], cwd?: string, script = MAIN, env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [script, ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const lines: string[] = [];
  const waiters: { match: RegExp; resolve: (line: string) => void }[] = [];
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const w of waiters.splice(0))
      if (w.match.test(line)) w.resolve(line);
      else waiters.push(w);
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  // Bounded, so a line that never comes fails with the log instead of the test's bare timeout.
  const waitFor = (match: RegExp, ms = WAIT_MS) =>
    new Promise<string>((resolve, reject) => {
      const found = lines.find((line) => match.test(line));
      if (found) return resolve(found);
      const timer = setTimeout(
        () => reject(new Error(`no log line ${match} within ${ms} ms:\n${lines.join('\n')}\n${stderr}`)),
        ms,
      );
      waiters.push({
        match,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`gatehouse exited ${code} before logging ${match}:\n${lines.join('\n')}\n${stderr}`));
      });
    });
  return { child, lines, waitFor, stderr: () => stderr };
}
