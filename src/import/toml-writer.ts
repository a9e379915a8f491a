// The TOML files `gatehouse import` writes: every generated line ends with "# from FILE:LINE", the place in the
// nginx or oauth2-proxy configuration it came from, and what needed no setting is kept as a comment beside it.

export interface Source {
  file: string;
  line: number;
}

export type TomlValue = string | number | boolean | TomlValue[] | { [key: string]: TomlValue };

export type Entry =
  { kind: 'key'; key: string; value: TomlValue; from: Source[]; note?: string } | { kind: 'comment'; text: string };

export interface Table {
  /** undefined for the keys before the first table; "[[routes]]" tables set array. */
  name?: string;
  array?: boolean;
  /** Comment lines printed above the header. */
  heading: string[];
  entries: Entry[];
}

export function formatSource(from: Source): string {
  return from.line > 0 ? `${from.file}:${from.line}` : from.file;
}

/** A TOML basic string, or a literal string ('…') when that keeps a regular expression readable. */
function str(text: string, preferLiteral = false): string {
  if (preferLiteral && text.includes('\\') && !/['\n\r\u0000-\u001f\u007f]/.test(text)) return `'${text}'`;
  return `"${text.replace(/[\\"\u0000-\u001f\u007f]/g, (c) => {
    const short: Record<string, string> = { '\\': '\\\\', '"': '\\"', '\n': '\\n', '\t': '\\t', '\r': '\\r' };
    return short[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  })}"`;
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

export function tomlValue(value: TomlValue): string {
  if (typeof value === 'string') return str(value, true);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(tomlValue).join(', ')}]`;
  const pairs = Object.entries(value).map(([k, v]) => `${BARE_KEY.test(k) ? k : str(k)} = ${tomlValue(v)}`);
  return pairs.length === 0 ? '{}' : `{ ${pairs.join(', ')} }`;
}

export function renderToml(header: string[], tables: Table[]): string {
  const out: string[] = header.map((line) => (line ? `# ${line}` : ''));
  for (const table of tables) {
    if (table.name === undefined && table.entries.length === 0 && table.heading.length === 0) continue;
    if (out.length > 0) out.push('');
    for (const line of table.heading) out.push(`# ${line}`);
    if (table.name !== undefined) out.push(table.array ? `[[${table.name}]]` : `[${table.name}]`);
    for (const entry of table.entries) {
      if (entry.kind === 'comment') {
        out.push(`# ${entry.text}`);
        continue;
      }
      const from = entry.from.map(formatSource).join(', ');
      const tail = [from && `from ${from}`, entry.note].filter(Boolean).join('; ');
      out.push(
        `${BARE_KEY.test(entry.key) ? entry.key : str(entry.key)} = ${tomlValue(entry.value)}${tail ? `  # ${tail}` : ''}`,
      );
    }
  }
  return `${out.join('\n')}\n`;
}
