// The translation's files: gatehouse.toml, one sites/NAME.toml per site (its notes at the top), the secret files.
import type { ImportResult, SiteOut, TranslateContext } from './context.ts';
import type { NginxConfig } from './nginx-parse.ts';
import { renderToml, formatSource, type Table } from './toml-writer.ts';

export function importResult(ctx: TranslateContext, nginx: NginxConfig): ImportResult {
  const sources = [nginx.file, ...ctx.cfgs.map((c) => c.file)];
  const header = [
    `Written by \`gatehouse import\` from ${sources.join(', ')}.`,
    'Each line names where it came from; check with `gatehouse check --config <this folder>`.',
  ];
  const files: ImportResult['files'] = [{ name: 'gatehouse.toml', text: gatehouseToml(ctx, header) }];
  for (const site of ctx.sites) files.push({ name: `sites/${site.fileName}.toml`, text: siteToml(site, header) });
  files.push(...ctx.secretFiles);
  const seen = new Set<string>();
  const unique = ctx.implied.filter((f) => {
    const key = `${formatSource(f.from)} ${f.name}`;
    return !seen.has(key) && !!seen.add(key);
  });
  return { files, refused: ctx.refused, implied: unique };
}

function gatehouseToml(ctx: TranslateContext, header: string[]): string {
  const global = ctx.global;
  return renderToml(header, [
    { heading: [], entries: [{ kind: 'key', key: 'sites_dir', value: 'sites', from: [] }, ...global.top] },
    { name: 'https', heading: [], entries: global.https },
    ...(global.http.length ? [{ name: 'http', heading: [], entries: global.http }] : []),
    ...(global.log.length ? [{ name: 'log', heading: [], entries: global.log }] : []),
    ...(global.proxy.length ? [{ name: 'proxy', heading: [], entries: global.proxy }] : []),
    ...(global.store.length ? [{ name: 'store', heading: [], entries: global.store }] : []),
    ...(global.acme.length ? [{ name: 'acme', heading: [], entries: global.acme }] : []),
    ...(global.metrics.length ? [{ name: 'metrics', heading: [], entries: global.metrics }] : []),
    ...(global.notes.length ? [{ heading: ['Needs no setting:'], entries: global.notes } as Table] : []),
  ]);
}

function siteToml(site: SiteOut, header: string[]): string {
  const tables: Table[] = [
    { heading: [], entries: site.top },
    { name: 'tls', heading: [], entries: site.tls },
    ...[...site.upstreams].map(([name, entries]) => ({ name: `upstreams.${name}`, heading: [], entries })),
    ...site.routes.map((entries) => ({ name: 'routes', array: true, heading: [], entries })),
    ...(site.auth.length
      ? [{ name: 'auth', heading: ['oauth2-proxy, translated: Gatehouse logs in itself'], entries: site.auth }]
      : []),
    ...(site.notes.length ? [{ heading: ['Needs no setting:'], entries: site.notes } as Table] : []),
  ];
  // Comments after [auth] would read as part of it: notes go to the top instead.
  const notes = tables.pop()!;
  if (notes.name !== undefined || notes.heading[0] !== 'Needs no setting:') tables.push(notes);
  const fileHeader = [
    ...header.slice(0, 1),
    ...(notes.heading[0] === 'Needs no setting:'
      ? ['', 'Needs no setting:', ...notes.entries.map((n) => (n.kind === 'comment' ? n.text : ''))]
      : []),
  ];
  return renderToml(fileHeader, tables);
}
