// Values with nginx variables ("$remote_addr", "https://new.example.com$request_uri"), read once at load time into
// literal parts and variable parts, so a typo is a configuration error and nothing is parsed per request.
// The names and meanings are nginx's (https://nginx.org/en/docs/varindex.html) for the few a proxy config uses.

export const REQUEST_HEADER_VARIABLES = [
  'remote_addr',
  'host',
  'scheme',
  'request_uri',
  'uri',
  'proxy_add_x_forwarded_for',
  'server_name',
  'server_port',
] as const;
export const REDIRECT_VARIABLES = ['scheme', 'host', 'request_uri', 'uri'] as const;

export type Variable = (typeof REQUEST_HEADER_VARIABLES)[number];

/** A literal, a named variable, or `$http_NAME` (the request header NAME, "_" read as "-"). */
export type TemplatePart = string | { variable: Variable } | { header: string };
export type Template = readonly TemplatePart[];

/** The parts of `text`, or an error message naming the unknown variable and the known ones. */
export function parseTemplate(text: string, allowed: readonly string[], headers: boolean): Template | string {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const match of text.matchAll(/\$(?:\{(\w+)\}|(\w+))/g)) {
    const name = (match[1] ?? match[2])!;
    if (match.index > last) parts.push(text.slice(last, match.index));
    last = match.index + match[0].length;
    if (headers && /^http_\w+$/.test(name)) parts.push({ header: name.slice(5).toLowerCase().replace(/_/g, '-') });
    else if (allowed.includes(name)) parts.push({ variable: name as Variable });
    else
      return `unknown variable $${name} (known: ${allowed.map((v) => `$${v}`).join(' ')}${headers ? ' $http_NAME' : ''})`;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

/** What the variables are for one request; `header` reads a request header (several lines joined with ", "). */
export interface TemplateValues {
  variable(name: Variable): string;
  header(name: string): string;
}

export function renderTemplate(template: Template, values: TemplateValues): string {
  let out = '';
  for (const part of template)
    out +=
      typeof part === 'string'
        ? part
        : 'variable' in part
          ? values.variable(part.variable)
          : values.header(part.header);
  return out;
}
