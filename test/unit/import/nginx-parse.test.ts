// The nginx reader: tokens with lines, directives with blocks, malformed input refused with file:line, includes and
// `nginx -T` output.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import {
  NginxSyntaxError,
  parseText,
  readNginxConfig,
  splitNginxDump,
  type Directive,
} from '../../../src/import/nginx-parse.ts';

const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/import');

/** name args… @line, nested with indentation, so a test reads like the configuration. */
function outline(list: Directive[], depth = 0): string[] {
  return list.flatMap((d) => [
    `${'  '.repeat(depth)}${[d.name, ...d.args].join(' ')} @${d.line}`,
    ...(d.block ? outline(d.block, depth + 1) : []),
  ]);
}

function syntaxError(text: string): string {
  try {
    parseText(text, 'site.conf');
  } catch (error) {
    assert.ok(error instanceof NginxSyntaxError, String(error));
    return error.message;
  }
  assert.fail('parsed without an error');
}

test('the reference setup: every directive with its arguments, line and block', () => {
  const file = path.join(FIXTURES, 'reference/nginx.conf');
  const directives = parseText(fs.readFileSync(file, 'utf8'), file);
  const lines = outline(directives);
  assert.equal(lines[0], 'events @2');
  assert.ok(lines.includes('  server @7'));
  assert.ok(lines.includes('    listen [::]:443 ssl http2 @9'));
  assert.ok(lines.includes('    location = /oauth2/auth @15'));
  assert.ok(lines.includes('      proxy_set_header Content-Length  @21'), 'the empty quoted string is an argument');
  assert.ok(lines.includes('    location ~ /\\.ht @45'), 'a backslash outside quotes is kept');
  assert.ok(lines.includes('      deny all @46'));
  assert.equal(lines.length, 42, 'every line that ends in ; or { (and events {})');
});

test('quotes, escapes, comments and ${var}', () => {
  const d = parseText(
    [
      'add_header X-Say "a \\"quoted\\" word; and # no comment" always; # a comment',
      "map $http_upgrade $connection_upgrade { default upgrade; '' close; }",
      'set $x ${host}_${request_uri};',
      'return 301 https://$host$request_uri#frag;',
      "log_format main '$remote_addr'",
      "                '$status';",
      'location ~ ^/(a|b)/\\d+$ { deny all; }',
    ].join('\n'),
    'f.conf',
  );
  assert.deepEqual(d[0]!.args, ['X-Say', 'a "quoted" word; and # no comment', 'always']);
  assert.deepEqual(outline([d[1]!]), [
    'map $http_upgrade $connection_upgrade @2',
    '  default upgrade @2',
    '   close @2',
  ]);
  assert.deepEqual(d[2]!.args, ['$x', '${host}_${request_uri}']);
  assert.deepEqual(d[3]!.args, ['301', 'https://$host$request_uri#frag'], '# inside a word is not a comment');
  assert.deepEqual([d[4]!.args, d[4]!.line], [['main', '$remote_addr', '$status'], 5]);
  assert.deepEqual(d[5]!.args, ['~', '^/(a|b)/\\d+$']);
  assert.equal(d.length, 6);
});

test('malformed input is an error naming the line, never a dropped or merged directive', () => {
  assert.equal(
    syntaxError('server {\n  listen 443 ssl;\n  server_name a.test\n  root /srv;\n}\n'),
    'site.conf:3: "server_name" is not terminated by ";"',
  );
  assert.equal(
    syntaxError('server {\n  location / {\n    proxy_pass http://b\n  }\n}\n'),
    'site.conf:3: "proxy_pass" is not terminated by ";" before "}"',
  );
  assert.equal(
    syntaxError('server {\n  listen 443;\n  location / {\n    proxy_pass http://b;\n}\n'),
    'site.conf:1: "server" block is not closed by "}"',
  );
  assert.equal(syntaxError('server {\n}\n}\n'), 'site.conf:3: unexpected "}"');
  assert.equal(
    syntaxError('events {}\nworker_processes 2'),
    'site.conf:2: "worker_processes" is not terminated by ";" (unexpected end of file)',
  );
  assert.equal(
    syntaxError('server {\n  proxy_pass http://b\n  location / { }\n}'),
    'site.conf:2: "proxy_pass" is not terminated by ";"',
  );
  assert.equal(
    syntaxError('server {\n  root /srv {\n  }\n}'),
    'site.conf:2: "root" takes no block: is a ";" missing before the "{" on line 2?',
  );
  assert.equal(syntaxError('server {\n  add_header X "open;\n}\n'), 'site.conf:2: unterminated double quote');
  assert.equal(syntaxError('server;'), 'site.conf:1: "server" has no "{" block');
  assert.equal(syntaxError('set $a ${host;\n'), 'site.conf:1: unterminated "${" in a variable name');
  assert.equal(syntaxError('server {\n  ;\n}'), 'site.conf:2: unexpected ";"');
  assert.equal(syntaxError('add_header X "a"b;'), 'site.conf:1: unexpected "b" after a quoted string');
  // An upstream's `server` lines are directives, not blocks.
  assert.deepEqual(outline(parseText('upstream b {\n  server 127.0.0.1:8080 max_fails=3;\n}', 'u.conf')), [
    'upstream b @1',
    '  server 127.0.0.1:8080 max_fails=3 @2',
  ]);
});

test('include: globs in sorted order, relative to the folder of the main file; a missing file is an error there', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-nginx-include-'));
  fs.mkdirSync(path.join(dir, 'sites'));
  fs.writeFileSync(path.join(dir, 'nginx.conf'), 'http {\n  include sites/*.conf;\n  include none/*.conf;\n}\n');
  fs.writeFileSync(path.join(dir, 'sites/b.conf'), '\nserver { server_name b.test; }\n');
  fs.writeFileSync(path.join(dir, 'sites/a.conf'), 'server { server_name a.test; }\n');
  const config = readNginxConfig(path.join(dir, 'nginx.conf'));
  assert.deepEqual(
    config.directives[0]!.block!.map((d) => `${path.relative(dir, d.file)}:${d.line} ${d.block![0]!.args[0]}`),
    ['sites/a.conf:1 a.test', 'sites/b.conf:2 b.test'],
  );
  fs.writeFileSync(path.join(dir, 'nginx.conf'), 'http {\n\n  include missing.conf;\n}\n');
  assert.throws(() => readNginxConfig(path.join(dir, 'nginx.conf')), {
    message: `${path.join(dir, 'nginx.conf')}:3: cannot read ${path.join(dir, 'missing.conf')}: ENOENT`,
  });
  fs.writeFileSync(path.join(dir, 'sites/a.conf'), 'server { server_name a.test }\n');
  fs.writeFileSync(path.join(dir, 'nginx.conf'), 'http { include sites/*.conf; }\n');
  assert.throws(() => readNginxConfig(path.join(dir, 'nginx.conf')), {
    message: `${path.join(dir, 'sites/a.conf')}:1: "server_name" is not terminated by ";" before "}"`,
  });
});

test('nginx -T output: files by their "# configuration file" markers, lines counted per file', () => {
  const dump = [
    'nginx: the configuration file /etc/nginx/nginx.conf syntax is ok',
    '# configuration file /etc/nginx/nginx.conf:',
    'events {}',
    'http {',
    '    include /etc/nginx/conf.d/*.conf;',
    '}',
    '',
    '# configuration file /etc/nginx/conf.d/app.conf:',
    '# a comment',
    'server {',
    '    server_name app.test;',
    '}',
  ].join('\n');
  assert.deepEqual([...splitNginxDump(dump)!.keys()], ['/etc/nginx/nginx.conf', '/etc/nginx/conf.d/app.conf']);
  assert.equal(splitNginxDump('events {}\n'), undefined);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-nginx-dump-'));
  fs.writeFileSync(path.join(dir, 'dump.txt'), dump);
  const config = readNginxConfig(path.join(dir, 'dump.txt'));
  assert.equal(config.file, '/etc/nginx/nginx.conf');
  const server = config.directives[1]!.block![0]!;
  assert.deepEqual([server.file, server.line, server.block![0]!.line], ['/etc/nginx/conf.d/app.conf', 2, 3]);
  fs.writeFileSync(path.join(dir, 'dump.txt'), dump.replace('conf.d/*.conf', 'other.conf'));
  assert.throws(() => readNginxConfig(path.join(dir, 'dump.txt')), {
    message: '/etc/nginx/nginx.conf:3: include: /etc/nginx/other.conf is not in the nginx -T output',
  });
});
