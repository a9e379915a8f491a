// One pino logger per process. JSON lines by default; "pretty" for the demo and humans.
// Secrets never reach a log line: cookies, authorization and token fields are redacted wherever they appear.
import pino, { type DestinationStream, type Logger } from 'pino';

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

/** The logger `[log]` asks for. pino-pretty (and its date and colour libraries) is loaded only for format = "pretty":
 *  a process that logs JSON never carries it. */
export async function openLogger(options: LoggerOptions): Promise<Logger> {
  if (options.format !== 'pretty') return createLogger(options);
  const { default: pretty } = await import('pino-pretty');
  return createLogger(
    options,
    pretty({
      colorize: process.stdout.isTTY,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
      singleLine: true,
      sync: true,
    }),
  );
}

/** JSON lines on stdout, or into `destination` (whose own format then applies; `format` is openLogger's). */
export function createLogger(options: LoggerOptions, destination?: DestinationStream): Logger {
  const base = { level: options.level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } };
  if (destination) return pino(base, destination);
  return pino(base, pino.destination({ sync: false }));
}

/** Writes out what an asynchronous destination still holds; call before process.exit(). */
export function flushLogger(log: Logger): Promise<void> {
  return new Promise((resolve) => log.flush(() => resolve()));
}
