// Every HTML page Gatehouse renders itself (error pages, the sign-in page, the signed-in hop) is made here. Values go
// in through html``, which escapes each one unless it is markup that html`` made itself: nothing from a request, a
// provider or a configuration reaches a page unescaped (OWASP XSS Prevention Cheat Sheet, output encoding for HTML
// contexts: https://cheatsheetseries.owasp.org/cheatsheets/Cross_Site_Scripting_Prevention_Cheat_Sheet.html).
// The bottom floor: imports nothing, so every folder may use it.

/** Markup made by html``: put into another html`` as it is. */
export class Markup {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

/** A template whose values are escaped for HTML text and quoted attribute values; Markup values are kept. */
export function html(strings: TemplateStringsArray, ...values: Array<string | number | Markup>): Markup {
  let text = strings[0]!;
  values.forEach((value, i) => {
    text += (value instanceof Markup ? value.text : escapeHtml(String(value))) + strings[i + 1]!;
  });
  return new Markup(text);
}

/** &, <, >, " and ' as numeric references: safe in text and in single- or double-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A whole page: the same document shell for every page; `head` adds markup before the title (refresh, style). */
export function renderPage(page: { title: string; body: Markup; head?: Markup }): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        ${page.head ?? ''}
        <title>${page.title}</title>
      </head>
      <body>
        ${page.body}
      </body>
    </html> `.text;
}
