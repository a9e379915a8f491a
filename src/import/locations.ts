// A server's locations → the site's routes, deny_paths, hsts and [auth]. Routes are path prefixes: an exact
// location translates only where the prefix route around it does the same, a regex one only as a literal prefix or
// a deny_paths rule.
import { refuse, src, type SiteOut, type TranslateContext } from './context.ts';
import { escapeRegex, literalPrefix, matcherRegex, type Matcher } from './location-match.ts';
import { authed, denyOnly, readLocationTree, type LocationTree } from './location-tree.ts';
import type { Directive } from './nginx-parse.ts';
import {
  addApiRoute,
  checkNamedLocations,
  claimAuthTargets,
  skipRegex,
  translateSiteAuth,
  type AuthRules,
  type RouteRule,
} from './oauth2-pattern.ts';
import { routeEntries } from './route-entries.ts';
import { accessKnobs, hstsOf } from './route-knobs.ts';
import type { Scope } from './scope.ts';
import type { Entry } from './toml-writer.ts';

/** What the walk over the route locations gathers. */
interface RouteWalk {
  tree: LocationTree;
  routeLocations: Directive[];
  siteHasAuth: boolean;
  denyPaths: RouteRule[];
  rules: AuthRules;
  /** The lines of each prefix route, to compare an exact location with. */
  routeBodies: Map<Directive, Entry[]>;
}

export function translateLocations(
  ctx: TranslateContext,
  server: Directive,
  s: Scope,
  locations: Directive[],
  site: SiteOut,
): void {
  const tree = readLocationTree(ctx, s, locations);
  if (!claimAuthTargets(ctx, tree, site)) return;
  const routeLocations = tree.all.filter(
    (l) => !tree.oauth2.has(l) && tree.matchers.get(l) && tree.matchers.get(l)!.kind !== 'named',
  );
  const walk: RouteWalk = {
    tree,
    routeLocations,
    siteHasAuth: routeLocations.some((l) => authed(tree, l)),
    denyPaths: [],
    rules: {
      skipRoutes: [],
      apiRoutes: [],
      flags: { pass_authorization_header: undefined, pass_access_token: undefined },
    },
    routeBodies: new Map(),
  };
  // Server-level add_header / allow+deny / limit_req → site settings.
  site.top.push(...accessKnobs(ctx, s.addHeaders, s.access, s.limitReq));
  for (const l of routeLocations) translateRouteLocation(ctx, site, walk, l);
  checkNamedLocations(ctx, tree, site);
  if (walk.denyPaths.length > 0)
    site.top.push({
      kind: 'key',
      key: 'deny_paths',
      value: walk.denyPaths.map((d) => d.value),
      from: walk.denyPaths.map((d) => d.from),
    });
  const hsts = hstsOf(ctx, [
    ...s.addHeaders,
    ...routeLocations.flatMap((l) => (l.block ?? []).filter((d) => d.name === 'add_header')),
  ]);
  if (hsts) site.top.push(hsts);
  if (!walk.siteHasAuth) {
    if (tree.oauth2.size > 0)
      site.notes.push({ kind: 'comment', text: 'no location asks for auth_request: the site is public' });
    return;
  }
  translateSiteAuth(ctx, server, site, tree.proxyAddress, walk.rules);
}

/** One location: a deny_paths rule, a route, or refused; then its skip_auth_routes or api_routes rule. */
function translateRouteLocation(ctx: TranslateContext, site: SiteOut, walk: RouteWalk, l: Directive): void {
  const { tree } = walk;
  const m = tree.matchers.get(l)!;
  const ls = tree.scopes.get(l)!;
  // A location that only denies is a deny_paths rule (403 before routing).
  if (denyOnly(l)) return addDenyPath(ctx, walk, l, m);
  const prefix = m.kind === 'prefix' ? m.path : literalPrefix(m);
  if (m.kind === 'regex' && prefix === undefined) {
    refuse(
      ctx,
      l,
      'routes match path prefixes: a regular-expression location translates only when it denies (deny_paths)',
      'location',
    );
    return;
  }
  const entries = routeEntries(ctx, l, ls, site, m.kind === 'exact' ? m.path : prefix!, walk.rules.flags);
  if (!entries) return;
  if (m.kind === 'exact') {
    if (!sameAsCoveringRoute(walk, m, entries)) {
      refuse(
        ctx,
        l,
        `routes are prefixes: "= ${m.path}" would also take ${m.path}…; it translates only when the prefix location around it does the same`,
        'location',
      );
      return;
    }
  } else {
    walk.routeBodies.set(l, entries);
    site.routes.push(entries);
  }
  if (walk.siteHasAuth && !authed(tree, l))
    walk.rules.skipRoutes.push({ value: skipRegex(tree, walk.routeLocations, m, l), from: src(ls.auth ?? l) });
  if (authed(tree, l)) addApiRoute(ctx, tree, l, walk.rules);
}

function addDenyPath(ctx: TranslateContext, walk: RouteWalk, l: Directive, m: Matcher): void {
  // Nested in a prefix location, a regex applies only under that prefix.
  const parent = walk.tree.parentOf.get(l);
  const outer = parent && walk.tree.matchers.get(parent);
  const regex = matcherRegex(m);
  const value =
    m.kind === 'regex' && outer?.kind === 'prefix'
      ? `^(?=${escapeRegex(outer.path)})${regex.startsWith('^') ? `(?:${regex})` : `[^]*?(?:${regex})`}`
      : regex;
  if (validRegex(value)) walk.denyPaths.push({ value, from: src(l) });
  else
    refuse(ctx, l, `"${m.path}" is a PCRE expression JavaScript's RegExp does not read: write it as one`, 'location');
}

/** Routes are prefixes: an exact location is kept only where the route that would take its path does the same. */
function sameAsCoveringRoute(walk: RouteWalk, m: Matcher, entries: Entry[]): boolean {
  const { matchers } = walk.tree;
  const cover = walk.routeLocations
    .filter((x) => matchers.get(x)!.kind === 'prefix' && m.path.startsWith(matchers.get(x)!.path))
    .sort((a, b) => matchers.get(b)!.path.length - matchers.get(a)!.path.length)[0];
  const coverBody = cover && walk.routeBodies.get(cover);
  const settings = (list: Entry[]) =>
    JSON.stringify(
      list
        .filter((e) => e.kind === 'key' && e.key !== 'path')
        .map((e) => [(e as { key: string }).key, (e as { value: unknown }).value]),
    );
  return !!cover && !!coverBody && settings(entries) === settings(coverBody);
}

function validRegex(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}
