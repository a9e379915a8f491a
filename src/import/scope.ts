// What a location inherits (nginx): knobs are inherited unless set again; list directives (proxy_set_header,
// add_header, error_page, limit_req, allow/deny) are inherited only by a level that has none of its own.
import { refuse, type TranslateContext } from './context.ts';
import { ROUTE_KNOBS } from './nginx-directives.ts';
import type { Directive } from './nginx-parse.ts';
import type { TomlValue } from './toml-writer.ts';

export type Level = 'http' | 'server' | 'location';

export interface Scope {
  knobs: Map<string, { value: TomlValue; d: Directive; level: Level }>;
  headers: Directive[];
  addHeaders: Directive[];
  access: Directive[];
  errorPages: Directive[];
  limitReq: Directive[];
  auth?: Directive;
  root?: Directive;
  index?: Directive;
}

const LIST_DIRECTIVES = {
  proxy_set_header: 'headers',
  add_header: 'addHeaders',
  error_page: 'errorPages',
  limit_req: 'limitReq',
} as const;

export const listOf = (name: string) => LIST_DIRECTIVES[name as keyof typeof LIST_DIRECTIVES];

export function emptyScope(): Scope {
  return { knobs: new Map(), headers: [], addHeaders: [], access: [], errorPages: [], limitReq: [] };
}

export function childScope(s: Scope): Scope {
  return { ...s, knobs: new Map(s.knobs) };
}

function knobValue(d: Directive, kind: 'duration' | 'size' | 'onoff'): TomlValue | undefined {
  const a = d.args[0];
  if (d.args.length !== 1 || a === undefined) return undefined;
  if (kind === 'onoff') return a === 'on' ? true : a === 'off' ? false : undefined;
  if (kind === 'size') {
    if (a === '0') return '1024g';
    return /^\d+[kmg]?$/i.test(a) ? a.toLowerCase() : undefined;
  }
  if (/^\d+$/.test(a)) return `${a}s`;
  return /^(\d+(ms|s|m|h|d))+$/.test(a) ? a : undefined;
}

/** Applies a directive valid at http, server and location level to the scope; false when it is none of those. */
export function applyCommon(ctx: TranslateContext, d: Directive, s: Scope, level: Level): boolean {
  const knob = ROUTE_KNOBS[d.name];
  if (knob) {
    const value = knobValue(d, knob.kind);
    if (value === undefined) refuse(ctx, d, `"${d.args.join(' ')}" is not a value Gatehouse reads for ${knob.key}`);
    else s.knobs.set(knob.key, { value, d, level });
    return true;
  }
  const list = listOf(d.name);
  if (list) {
    // At http level the list starts empty; server and location levels replace the inherited list themselves.
    s[list] = [...s[list], d];
    return true;
  }
  switch (d.name) {
    case 'auth_request':
      s.auth = d;
      return true;
    case 'root':
      s.root = d;
      return true;
    case 'index':
      s.index = d;
      return true;
    case 'allow':
    case 'deny':
      s.access = [...s.access, d];
      return true;
  }
  return false;
}
