// nginx + oauth2-proxy → gatehouse.toml and one site file per server block. Every directive ends up in one of three
// places: a generated line ("# from file:line"), a comment saying why it needs no setting (implied), or the list of
// refusals (`file:line: directive: why`). Nothing is dropped without a word. The tables of what each directive
// becomes are in nginx-directives.ts; the main and http levels are read in http-level.ts, each server block in
// server-site.ts (its locations in locations.ts), and the files are written out in output.ts.
import { newContext, type ImportResult, type TranslateOptions } from './context.ts';
import { finishGlobalTables, translateHttpLevel } from './http-level.ts';
import type { NginxConfig } from './nginx-parse.ts';
import type { OAuth2ProxyConfig } from './oauth2-proxy.ts';
import { importResult } from './output.ts';
import { translateServer } from './server-site.ts';

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
  return importResult(ctx, nginx);
}
