// nginx `location` matchers, and the regular expressions on the path that stand for them in deny_paths,
// skip_auth_routes and api_routes.
import type { Directive } from './nginx-parse.ts';

/** `location` modifiers: prefix, `=` exact, `^~` prefix that skips regexes, `~` / `~*` regular expressions, `@name`. */
export interface Matcher {
  kind: 'prefix' | 'exact' | 'regex' | 'named';
  path: string;
  caseless?: boolean;
}

export function matcherOf(d: Directive): Matcher | undefined {
  const [a, b] = d.args;
  if (d.args.length === 1 && a!.startsWith('@')) return { kind: 'named', path: a! };
  if (d.args.length === 1 && a!.startsWith('/')) return { kind: 'prefix', path: a! };
  if (d.args.length === 2 && a === '^~') return { kind: 'prefix', path: b! };
  if (d.args.length === 2 && a === '=') return { kind: 'exact', path: b! };
  if (d.args.length === 2 && (a === '~' || a === '~*')) return { kind: 'regex', path: b!, caseless: a === '~*' };
  return undefined;
}

export const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A regular expression on the path that matches what the location matches, for deny_paths and the auth lists. */
export function matcherRegex(m: Matcher): string {
  if (m.kind === 'prefix') return `^${escapeRegex(m.path)}`;
  if (m.kind === 'exact') return `^${escapeRegex(m.path)}$`;
  return m.caseless ? `(?i:${m.path})` : m.path;
}

/** A regex location that is a literal prefix (`~ ^/api/`) is a prefix route. */
export function literalPrefix(m: Matcher): string | undefined {
  if (m.kind !== 'regex' || m.caseless) return undefined;
  const match = /^\^(\/(?:[A-Za-z0-9_~%@:,=+-]|\\[./-]|\/)*)$/.exec(m.path);
  return match ? match[1]!.replace(/\\(.)/g, '$1') : undefined;
}
