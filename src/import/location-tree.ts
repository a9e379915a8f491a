// A server's locations with what each inherits: a nested location is walked as one more location, with the scope of
// the one around it (nginx). Locations under /oauth2/ are oauth2-proxy's own, answered by Gatehouse.
import { refuse, type TranslateContext } from './context.ts';
import { matcherOf, type Matcher } from './location-match.ts';
import type { Directive } from './nginx-parse.ts';
import { applyCommon, childScope, listOf, type Scope } from './scope.ts';

export interface LocationTree {
  /** Every location of the server, nested ones after the ones they are in. */
  all: Directive[];
  matchers: Map<Directive, Matcher | undefined>;
  /** The server's @named locations, by name. */
  named: Map<string, Directive>;
  scopes: Map<Directive, Scope>;
  parentOf: Map<Directive, Directive>;
  /** oauth2-proxy's locations: /oauth2/… and the auth_request target. */
  oauth2: Set<Directive>;
  /** Where oauth2-proxy listens, from the proxy_pass of one of its locations. */
  proxyAddress?: string;
}

export function readLocationTree(ctx: TranslateContext, s: Scope, locations: Directive[]): LocationTree {
  const matchers = new Map(locations.map((l) => [l, matcherOf(l)] as const));
  const tree: LocationTree = {
    all: [...locations],
    matchers,
    named: new Map(locations.filter((l) => matchers.get(l)?.kind === 'named').map((l) => [l.args[0]!, l])),
    scopes: new Map(),
    parentOf: new Map(),
    oauth2: new Set(),
  };
  for (const l of tree.all) {
    const m = matchers.get(l);
    if (!m) {
      refuse(ctx, l, `location "${l.args.join(' ')}" is not a form Gatehouse reads`);
      continue;
    }
    const parent = tree.parentOf.get(l);
    tree.scopes.set(l, locationScope(ctx, l, parent ? tree.scopes.get(parent)! : s));
    for (const child of (l.block ?? []).filter((d) => d.name === 'location')) {
      tree.parentOf.set(child, l);
      matchers.set(child, matcherOf(child));
      tree.all.push(child);
    }
    if (m.kind !== 'named' && m.path.startsWith('/oauth2/')) {
      tree.oauth2.add(l);
      const pass = l.block?.find((d) => d.name === 'proxy_pass');
      if (pass) tree.proxyAddress ??= pass.args[0];
    }
  }
  return tree;
}

/** The location's own settings over what it inherits; a list directive of its own replaces the inherited list. */
function locationScope(ctx: TranslateContext, l: Directive, inherited: Scope): Scope {
  const ls = childScope(inherited);
  const own = new Set<string>();
  for (const d of l.block ?? []) {
    const list = listOf(d.name);
    if (list) {
      if (!own.has(list)) ls[list] = [];
      own.add(list);
      ls[list] = [...ls[list], d];
    } else if (d.name === 'allow' || d.name === 'deny') {
      if (!own.has('access')) ls.access = [];
      own.add('access');
      ls.access = [...ls.access, d];
    } else applyCommon(ctx, d, ls, 'location');
  }
  return ls;
}

/** deny_paths answer 403 before auth: such a location needs no login and no exclusion from skip rules. */
export function denyOnly(l: Directive): boolean {
  const meaningful = (l.block ?? []).filter((d) => !['access_log', 'log_not_found'].includes(d.name));
  return (
    meaningful.length > 0 &&
    meaningful.every((d) => (d.name === 'deny' && d.args[0] === 'all') || (d.name === 'return' && d.args[0] === '403'))
  );
}

/** The location asks for auth_request (itself or inherited). */
export function authed(tree: LocationTree, l: Directive): boolean {
  const a = tree.scopes.get(l)!.auth;
  return a !== undefined && a.args[0] !== 'off';
}
