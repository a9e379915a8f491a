// nginx + oauth2-proxy → gatehouse.toml and one site file per server block. Every directive ends up in one of three
// places: a generated line ("# from file:line"), a comment saying why it needs no setting (implied), or the list of
// refusals (`file:line: directive: why`). Nothing is dropped without a word. The tables of what each directive
// becomes are in nginx-directives.ts.
import { newContext, type ImportResult, type TranslateOptions } from './context.ts';
import { finishGlobalTables, translateHttpLevel } from './http-level.ts';
import type { NginxConfig } from './nginx-parse.ts';
import type { OAuth2ProxyConfig } from './oauth2-proxy.ts';
import { translateServer } from './server-site.ts';
import { renderToml, formatSource, type Table } from './toml-writer.ts';

export type { ImportResult, TranslateOptions } from './context.ts';

export function translate(nginx: NginxConfig, cfgs: OAuth2ProxyConfig[], options: TranslateOptions): ImportResult {
  const ctx = newContext(cfgs, options);
  const { httpScope, servers } = translateHttpLevel(ctx, nginx);
  for (const server of servers) translateServer(ctx, httpScope, server);

  // Unused oauth2-proxy configurations are reported: their protection would otherwise silently vanish.
  for (const cfg of cfgs)
    if (!ctx.usedCfgs.has(cfg))
      ctx.refused.push({
        from: { file: cfg.file, line: 1 },
        name: 'oauth2-proxy',
        why: 'no translated server block sends auth_request to this oauth2-proxy',
      });

  finishGlobalTables(ctx);
  const { global, sites, secretFiles, refused, implied } = ctx;
  const files: ImportResult['files'] = [];
  const sources = [nginx.file, ...cfgs.map((c) => c.file)];
  const header = [
    `Written by \`gatehouse import\` from ${sources.join(', ')}.`,
    'Each line names where it came from; check with `gatehouse check --config <this folder>`.',
  ];
  files.push({
    name: 'gatehouse.toml',
    text: renderToml(header, [
      { heading: [], entries: [{ kind: 'key', key: 'sites_dir', value: 'sites', from: [] }, ...global.top] },
      { name: 'https', heading: [], entries: global.https },
      ...(global.http.length ? [{ name: 'http', heading: [], entries: global.http }] : []),
      ...(global.log.length ? [{ name: 'log', heading: [], entries: global.log }] : []),
      ...(global.proxy.length ? [{ name: 'proxy', heading: [], entries: global.proxy }] : []),
      ...(global.acme.length ? [{ name: 'acme', heading: [], entries: global.acme }] : []),
      ...(global.metrics.length ? [{ name: 'metrics', heading: [], entries: global.metrics }] : []),
      ...(global.notes.length ? [{ heading: ['Needs no setting:'], entries: global.notes } as Table] : []),
    ]),
  });
  for (const site of sites) {
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
    files.push({ name: `sites/${site.fileName}.toml`, text: renderToml(fileHeader, tables) });
  }
  files.push(...secretFiles);
  const seen = new Set<string>();
  const unique = implied.filter((f) => {
    const key = `${formatSource(f.from)} ${f.name}`;
    return !seen.has(key) && !!seen.add(key);
  });
  return { files, refused, implied: unique };
}
