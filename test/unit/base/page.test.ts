// The one page renderer: every value is escaped for HTML text and quoted attributes, markup made by html`` is kept.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { html, renderPage } from '../../../src/base/page.ts';

test('html`` escapes every value (text and attributes) and keeps nested html``', () => {
  const hostile = `"><script>alert('x')</script>&`;
  assert.equal(
    html`<a href="${hostile}">${hostile}</a>`.text,
    '<a href="&#34;&#62;&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;&#38;">&#34;&#62;&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;&#38;</a>',
  );
  assert.equal(html`<p>${html`<b>${'<i>'}</b>`} ${7}</p>`.text, '<p><b>&#60;i&#62;</b> 7</p>');
});

test('renderPage: one document shell; the title is escaped, head markup comes before it', () => {
  const page = renderPage({
    title: 'A <b> & "c"',
    head: html`<meta name="robots" content="noindex" />`,
    body: html`<p>${'x<y'}</p>`,
  });
  assert.equal(
    page,
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">' +
      '<title>A &#60;b&#62; &#38; &#34;c&#34;</title></head><body><p>x&#60;y</p></body></html>\n',
  );
});
