// Durations and sizes as operators write them in nginx and oauth2-proxy configs:
// "90s", "1m30s", "168h", "500ms", a bare number of seconds (nginx: `proxy_read_timeout 90`);
// "10m", "128k", "1g", a bare number of bytes (nginx: `client_max_body_size 10m`).
// Every duration and size of every config file is read here: the schemas use `duration` and `size`.
import { z } from 'zod';

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** Milliseconds, or undefined when the text is not a duration. */
export function parseDurationMs(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? text * 1000 : undefined;
  const trimmed = text.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== trimmed) return undefined;
  return parts.reduce((ms, [, n, unit]) => ms + Number(n) * DURATION_UNITS_MS[unit!]!, 0);
}

/** Bytes, or undefined when the text is not a size. */
export function parseSizeBytes(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isInteger(text) && text >= 0 ? text : undefined;
  const match = /^(\d+)([kmg]?)b?$/i.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * SIZE_UNITS[match[2]!.toLowerCase()]!;
}

/** A duration key: a string or bare number of seconds in the file, milliseconds in the validated value. */
export const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDurationMs(value);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a duration (examples: "90s", "1m30s", "168h", 90)` });
    return z.NEVER;
  }
  return ms;
});

/** A size key: a string or bare number of bytes in the file, bytes in the validated value. */
export const size = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseSizeBytes(value);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a size (examples: "10m", "128k", 1048576)` });
    return z.NEVER;
  }
  return bytes;
});
