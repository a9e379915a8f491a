// A small nginx configuration reader after crossplane's design (https://github.com/nginxinc/crossplane): a lexer
// turns the text into tokens that know their line, a parser turns tokens into directives {name, args, file, line,
// block}. Malformed input is an error naming file and line, never a silently dropped or merged directive: a missing
// ";" or "}", an unexpected "}" or "{", an unterminated quote. `include` is resolved (globs, relative to the
// configuration prefix), and the output of `nginx -T` is read as the files its "# configuration file X:" markers name.
import fs from 'node:fs';
import path from 'node:path';

export interface Directive {
  name: string;
  args: string[];
  file: string;
  line: number;
  /** The directives inside `{ … }`, for block directives (server, location, upstream, map, …). */
  block?: Directive[];
}

export class NginxSyntaxError extends Error {
  readonly file: string;
  readonly line: number;
  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.file = file;
    this.line = line;
  }
}

interface Token {
  value: string;
  line: number;
  /** Quoted tokens are always words, never the punctuation "{", "}" or ";". */
  quoted: boolean;
}

/** Splits nginx configuration text into words and the punctuation `{`, `}`, `;` (ngx_conf_read_token's rules). */
export function lex(text: string, file: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      i++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < n && text[i] !== '\n') i++;
      continue;
    }
    if (c === '{' || c === '}' || c === ';') {
      tokens.push({ value: c, line, quoted: false });
      i++;
      continue;
    }
    if (c === '"' || c === "'") {
      const start = line;
      let value = '';
      i++;
      while (i < n && text[i] !== c) {
        if (text[i] === '\\' && i + 1 < n) {
          // nginx unescapes \" \' \\ \t \r \n inside quotes and keeps any other backslash as written.
          const next = text[i + 1]!;
          const escaped: Record<string, string> = { '"': '"', "'": "'", '\\': '\\', t: '\t', r: '\r', n: '\n' };
          if (escaped[next] !== undefined) {
            value += escaped[next];
            i += 2;
            continue;
          }
        }
        if (text[i] === '\n') line++;
        value += text[i];
        i++;
      }
      if (i >= n) throw new NginxSyntaxError(file, start, `unterminated ${c === '"' ? 'double' : 'single'} quote`);
      i++;
      // nginx wants a space, ";", "{" or ")" after a closing quote: `"a"b` is an error there.
      const after = text[i];
      if (after !== undefined && !/[\s;{})]/.test(after))
        throw new NginxSyntaxError(file, line, `unexpected "${after}" after a quoted string`);
      tokens.push({ value, line: start, quoted: true });
      continue;
    }
    // A bare word runs up to whitespace, ";", "{" or "}"; "${name}" keeps its braces; "\x" is x taken literally.
    const start = line;
    let value = '';
    while (i < n) {
      const d = text[i]!;
      if (d === '\\' && i + 1 < n) {
        value += d + text[i + 1]!;
        if (text[i + 1] === '\n') line++;
        i += 2;
        continue;
      }
      if (d === '$' && text[i + 1] === '{') {
        const close = text.indexOf('}', i + 2);
        const lf = text.indexOf('\n', i + 2);
        if (close === -1 || (lf !== -1 && lf < close))
          throw new NginxSyntaxError(file, line, 'unterminated "${" in a variable name');
        value += text.slice(i, close + 1);
        i = close + 1;
        continue;
      }
      if (/\s/.test(d) || d === ';' || d === '{' || d === '}') break;
      value += d;
      i++;
    }
    tokens.push({ value, line: start, quoted: false });
  }
  return tokens;
}

/** Directives that take a block; any other directive followed by "{" is an error (a forgotten ";" before a block). */
export const BLOCK_DIRECTIVES = new Set([
  'events',
  'http',
  'server',
  'location',
  'upstream',
  'map',
  'geo',
  'types',
  'if',
  'limit_except',
  'split_clients',
  'match',
  'stream',
  'mail',
]);

/** Blocks whose lines are data (`key value;`), not directives: no directive checks inside them. */
const DATA_BLOCKS = new Set(['map', 'geo', 'types', 'split_clients', 'match']);

/**
 * Directives of the usual http configuration. A bare word that starts a later line inside an unfinished directive
 * and names one of these means a ";" was forgotten at the end of the line before: nginx would read the two lines
 * as one directive and fail (or, worse, accept it with different arguments).
 */
export const KNOWN_DIRECTIVES = new Set([
  ...BLOCK_DIRECTIVES,
  'include',
  'listen',
  'server_name',
  'root',
  'alias',
  'index',
  'return',
  'rewrite',
  'try_files',
  'proxy_pass',
  'proxy_set_header',
  'proxy_http_version',
  'proxy_connect_timeout',
  'proxy_send_timeout',
  'proxy_read_timeout',
  'proxy_request_buffering',
  'proxy_buffering',
  'proxy_pass_request_body',
  'proxy_redirect',
  'client_max_body_size',
  'client_body_buffer_size',
  'client_body_timeout',
  'ssl_certificate',
  'ssl_certificate_key',
  'ssl_protocols',
  'ssl_ciphers',
  'auth_request',
  'auth_request_set',
  'error_page',
  'add_header',
  'allow',
  'deny',
  'limit_req',
  'limit_req_zone',
  'keepalive',
  'access_log',
  'error_log',
  'worker_processes',
  'http2',
  'internal',
  'set_real_ip_from',
  'real_ip_header',
]);

/** Parses one file's text into its directives (includes not resolved). */
export function parseText(text: string, file: string): Directive[] {
  const tokens = lex(text, file);
  let at = 0;

  const parseBlock = (parent: Directive | undefined): Directive[] => {
    const list: Directive[] = [];
    const inData = parent !== undefined && DATA_BLOCKS.has(parent.name);
    while (at < tokens.length) {
      const first = tokens[at]!;
      if (!first.quoted && first.value === '}') {
        if (!parent) throw new NginxSyntaxError(file, first.line, 'unexpected "}"');
        at++;
        return list;
      }
      if (!first.quoted && (first.value === '{' || first.value === ';'))
        throw new NginxSyntaxError(file, first.line, `unexpected "${first.value}"`);
      at++;
      const directive: Directive = { name: first.value, args: [], file, line: first.line };
      let previousLine = first.line;
      for (;;) {
        const token = tokens[at];
        if (!token)
          throw new NginxSyntaxError(
            file,
            previousLine,
            `"${directive.name}" is not terminated by ";" (unexpected end of file)`,
          );
        at++;
        if (!token.quoted && token.value === ';') break;
        if (!token.quoted && token.value === '}')
          throw new NginxSyntaxError(file, previousLine, `"${directive.name}" is not terminated by ";" before "}"`);
        if (!token.quoted && token.value === '{') {
          if (!inData && !BLOCK_DIRECTIVES.has(directive.name))
            throw new NginxSyntaxError(
              file,
              directive.line,
              `"${directive.name}" takes no block: is a ";" missing before the "{" on line ${token.line}?`,
            );
          directive.block = parseBlock(directive);
          break;
        }
        if (!inData && !token.quoted && token.line > previousLine && KNOWN_DIRECTIVES.has(token.value))
          throw new NginxSyntaxError(file, previousLine, `"${directive.name}" is not terminated by ";"`);
        directive.args.push(token.value);
        previousLine = token.line;
      }
      // `server` is a block in http and stream, and a plain directive inside `upstream`.
      const plainHere = directive.name === 'server' && parent?.name === 'upstream';
      if (!inData && !plainHere && directive.block === undefined && BLOCK_DIRECTIVES.has(directive.name))
        throw new NginxSyntaxError(file, directive.line, `"${directive.name}" has no "{" block`);
      list.push(directive);
    }
    if (parent) throw new NginxSyntaxError(file, parent.line, `"${parent.name}" block is not closed by "}"`);
    return list;
  };
  return parseBlock(undefined);
}

/** The files of an `nginx -T` dump, by the path each "# configuration file PATH:" marker names; undefined if none. */
export function splitNginxDump(text: string): Map<string, string> | undefined {
  const marker = /^# configuration file (.+):\r?$/;
  const files = new Map<string, string>();
  let current: string | undefined;
  let lines: string[] = [];
  for (const line of text.split('\n')) {
    const match = marker.exec(line);
    if (match) {
      if (current !== undefined) files.set(current, lines.join('\n'));
      current = match[1]!;
      lines = [];
    } else if (current !== undefined) lines.push(line);
  }
  if (current === undefined) return undefined;
  files.set(current, lines.join('\n'));
  return files;
}

export interface NginxConfig {
  /** The main file (the first of an `nginx -T` dump). */
  file: string;
  directives: Directive[];
}

/**
 * Reads an nginx configuration file, or an `nginx -T` dump, with every `include` replaced by the directives of the
 * files it names (a glob matches in sorted order, as nginx does; a relative path is relative to the directory of the
 * main file, nginx's configuration prefix). An include that matches nothing is an error unless it is a glob.
 */
export function readNginxConfig(mainFile: string): NginxConfig {
  const text = readText(mainFile, mainFile, 1);
  const dump = splitNginxDump(text);
  const first = dump ? [...dump.keys()][0]! : mainFile;
  const prefix = path.dirname(dump ? first : path.resolve(mainFile));
  const load = (file: string, from: Directive | undefined): string => {
    if (dump) {
      const found = dump.get(file);
      if (found === undefined)
        throw new NginxSyntaxError(from!.file, from!.line, `include: ${file} is not in the nginx -T output`);
      return found;
    }
    return readText(file, from?.file ?? mainFile, from?.line ?? 1);
  };
  const matches = (pattern: string): string[] => {
    if (!/[*?[]/.test(pattern)) return [pattern];
    if (dump) return [...dump.keys()].filter((f) => path.matchesGlob(f, pattern)).sort();
    return fs.globSync(pattern).sort();
  };
  const expand = (list: Directive[], depth: number): Directive[] =>
    list.flatMap((d) => {
      if (d.name === 'include') {
        if (d.args.length !== 1) throw new NginxSyntaxError(d.file, d.line, 'include takes one file name or glob');
        if (depth > 20) throw new NginxSyntaxError(d.file, d.line, 'include nested more than 20 deep (a loop?)');
        const pattern = path.resolve(prefix, d.args[0]!);
        return matches(pattern).flatMap((file) => expand(parseText(load(file, d), file), depth + 1));
      }
      return d.block ? [{ ...d, block: expand(d.block, depth) }] : [d];
    });
  const displayName = dump ? first : mainFile;
  return { file: displayName, directives: expand(parseText(dump ? dump.get(first)! : text, displayName), 0) };
}

function readText(file: string, fromFile: string, fromLine: number): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new NginxSyntaxError(
      fromFile,
      fromLine,
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}
