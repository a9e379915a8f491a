// One pino logger per process. JSON lines by default; "pretty" for the demo and humans.
// Secrets never reach a log line: cookies, authorization and token fields are redacted wherever they appear.
import pino, { type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

const REDACT = [
  'headers.cookie',
  'headers.authorization',
  'headers["set-cookie"]',
  'headers["x-auth-request-access-token"]',
  '*.cookie',
  '*.authorization',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.client_secret',
  '*.cookie_secret',
];

export interface LoggerOptions {
  level: string;
  format: 'json' | 'pretty';
}

export function createLogger(options: LoggerOptions, destination?: DestinationStream): Logger {
  const base = { level: options.level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } };
  if (destination) return pino(base, destination);
  if (options.format === 'pretty')
    return pino(
      base,
      pretty({
        colorize: process.stdout.isTTY,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname',
        singleLine: true,
        sync: true,
      }),
    );
  return pino(base, pino.destination({ sync: false }));
}

/** Writes out what an asynchronous destination still holds; call before process.exit(). */
export function flushLogger(log: Logger): Promise<void> {
  return new Promise((resolve) => log.flush(() => resolve()));
}
