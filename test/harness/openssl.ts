// `openssl s_client` as a TLS client the tests drive from outside Node: another TLS stack, its own session files,
// renegotiation and cipher choices Node's client will not make.
import { execFile } from 'node:child_process';

export interface SClientResult {
  code: number | null;
  output: string;
}

/**
 * Runs `openssl s_client -connect 127.0.0.1:<port> <args>`, writes `input` to it, and resolves when it exits.
 * With `-ign_eof` it reads until the server closes, so an HTTP request with `Connection: close` gets its whole answer.
 */
export function sClient(port: number, args: string[], input = '', timeoutMs = 30_000): Promise<SClientResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, ...args],
      { timeout: timeoutMs, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if ((error as NodeJS.ErrnoException | null)?.code === 'ENOENT')
          return reject(new Error('openssl is missing: run `npm run setup` (apt-get install openssl)'));
        if (error?.killed)
          return reject(
            new Error(`openssl s_client ${args.join(' ')} did not exit within ${timeoutMs} ms\n${stdout}${stderr}`),
          );
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, output: `${stdout}${stderr}` });
      },
    );
    child.stdin!.end(input);
  });
}

/** "New, TLSv1.2, Cipher is …" or "Reused, TLSv1.2, …": whether s_client resumed the session it was given. */
export function sessionLine(output: string): string {
  return /^(New|Reused), .*$/m.exec(output)?.[0] ?? `no session line in:\n${output}`;
}
