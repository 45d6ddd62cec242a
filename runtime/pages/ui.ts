/**
 * The pages people open in a browser: a function's docs page (`GET /docs`) and the gateway's
 * root page (`GET /` with `Accept: text/html`, in embedded mode and at nginx alike). Both are
 * self-contained (no CDN, no downloaded assets) and read everything they show from the
 * function index and each function's `openapi.json`, so one static page serves any functions.
 */

/** True when a request's Accept header asks for a page rather than JSON. */
export function wantsHtml(accept: string | undefined): boolean {
  return /text\/html/i.test(accept ?? '');
}

const STYLE = `
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --card: #f6f8fa; --accent: #0969da; --bad: #cf222e; --good: #1a7f37; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9198a1; --line: #30363d; --card: #161b22; --accent: #4493f8; --bad: #f85149; --good: #3fb950; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 72rem; padding: 1.5rem; font: 15px/1.5 system-ui, sans-serif; color: var(--fg); }
h1 { margin: 0 0 .25rem; font-size: 1.6rem; } h2 { margin: 0; font-size: 1.25rem; }
a { color: var(--accent); }
code, pre, textarea, select, input { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
.muted { color: var(--muted); }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.25rem; margin: 1rem 0; background: var(--card); }
.card header { display: flex; flex-wrap: wrap; gap: .25rem 1rem; align-items: baseline; }
.tensors { margin: .5rem 0; padding: 0; list-style: none; }
.tensors li { font-family: ui-monospace, monospace; font-size: 13px; }
details { border-top: 1px solid var(--line); padding: .5rem 0; }
summary { cursor: pointer; }
.method { display: inline-block; min-width: 3.5rem; font-weight: 600; font-family: ui-monospace, monospace; }
form { display: grid; gap: .5rem; margin-top: .5rem; }
label { display: grid; gap: .15rem; }
textarea { width: 100%; min-height: 5rem; resize: vertical; padding: .5rem; border: 1px solid var(--line); border-radius: 6px; background: transparent; color: inherit; }
input[type=text], select { padding: .3rem .4rem; border: 1px solid var(--line); border-radius: 6px; background: transparent; color: inherit; }
button { justify-self: start; padding: .35rem 1rem; border: 0; border-radius: 6px; background: var(--accent); color: #fff; font-weight: 600; cursor: pointer; }
pre.answer { margin: .5rem 0 0; padding: .5rem; border-left: 3px solid var(--line); white-space: pre-wrap; word-break: break-word; max-height: 30rem; overflow: auto; }
pre.answer:empty { display: none; }
pre.answer.ok { border-color: var(--good); } pre.answer.failed { border-color: var(--bad); }
pre.example { margin: .5rem 0; padding: .5rem; border: 1px dashed var(--line); border-radius: 6px; white-space: pre-wrap; }
.status { font-weight: 600; }
`;

/**
 * The page script, plain ES2017 for any browser. It only ever puts text into the page
 * (textContent), never markup, so nothing a document or an answer holds can run.
 */
const SCRIPT = `
(function () {
  'use strict';

  function h(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') node.textContent = attrs[k];
      else if (k === 'className') node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  function scalar(v) { return v === null || typeof v !== 'object'; }

  function flat(v) {
    if (scalar(v)) return JSON.stringify(v);
    if (Array.isArray(v)) return '[' + v.map(flat).join(', ') + ']';
    return '{' + Object.keys(v).map(function (k) { return JSON.stringify(k) + ': ' + flat(v[k]); }).join(', ') + '}';
  }

  // JSON that fits the width stays on one line; long lists of numbers wrap like text.
  function formatJson(v, indent, width) {
    indent = indent || '';
    width = width || 88;
    var one = flat(v);
    if (scalar(v) || indent.length + one.length <= width) return one;
    var inner = indent + '  ';
    if (Array.isArray(v)) {
      if (v.every(scalar)) {
        var lines = [], line = '';
        v.forEach(function (x) {
          var item = JSON.stringify(x);
          if (line && inner.length + line.length + item.length + 2 > width) { lines.push(line + ','); line = ''; }
          line += (line ? ', ' : '') + item;
        });
        lines.push(line);
        return '[\\n' + lines.map(function (l) { return inner + l; }).join('\\n') + '\\n' + indent + ']';
      }
      return '[\\n' + v.map(function (x) { return inner + formatJson(x, inner, width); }).join(',\\n') + '\\n' + indent + ']';
    }
    return '{\\n' + Object.keys(v).map(function (k) {
      return inner + JSON.stringify(k) + ': ' + formatJson(v[k], inner, width);
    }).join(',\\n') + '\\n' + indent + '}';
  }

  function shape(s) { return '[' + s.join(', ') + ']'; }

  function tensorList(title, tensors) {
    var list = h('ul', { className: 'tensors' });
    (tensors || []).forEach(function (t) { list.appendChild(h('li', { text: title + ' ' + t.name + ': ' + t.datatype + ' ' + shape(t.shape) })); });
    return list;
  }

  function operations(doc) {
    var out = [];
    Object.keys(doc.paths || {}).forEach(function (path) {
      ['get', 'post', 'put', 'patch', 'delete'].forEach(function (method) {
        var op = doc.paths[path][method];
        if (op) out.push({ path: path, method: method.toUpperCase(), op: op });
      });
    });
    return out;
  }

  // What an operation takes: JSON (a textarea), another media type (a file), or nothing.
  function bodyOf(op) {
    var content = op.requestBody && op.requestBody.content;
    if (!content) return { kind: 'none' };
    if (content['application/json']) return { kind: 'json', type: 'application/json', example: content['application/json'].example };
    var type = Object.keys(content)[0];
    return { kind: 'file', type: type };
  }

  function serverOf(doc) {
    var url = (doc.servers && doc.servers[0] && doc.servers[0].url) || '';
    return url.replace(/\\/$/, '');
  }

  function showAnswer(pre, res, text, ms) {
    var body = text;
    try { body = formatJson(JSON.parse(text)); } catch (e) { if (body.length > 20000) body = body.slice(0, 20000) + '\\n...'; }
    pre.className = 'answer ' + (res.ok ? 'ok' : 'failed');
    pre.textContent = '';
    pre.appendChild(h('span', { className: 'status', text: res.status + ' ' + res.statusText }));
    pre.appendChild(document.createTextNode(' (' + Math.round(ms) + ' ms)\\n' + body));
  }

  // A form that sends one request to an operation and shows the answer under it.
  function tryForm(doc, entry) {
    var form = h('form', { 'data-path': entry.path, 'data-method': entry.method });
    var fields = {};
    (entry.op.parameters || []).forEach(function (p) {
      var input = h('input', { type: 'text', name: p.name, placeholder: p.description || p.name });
      if (p.schema && p.schema.enum) input.value = p.schema.enum[0];
      fields[p.name] = { param: p, input: input };
      form.appendChild(h('label', {}, h('span', { className: 'muted', text: p.name + ' (' + p.in + ')' }), input));
    });
    var body = bodyOf(entry.op);
    var editor = null;
    if (body.kind === 'json') {
      editor = h('textarea', { name: 'body', spellcheck: 'false', 'aria-label': 'JSON request body' });
      editor.value = body.example === undefined ? '' : formatJson(body.example);
      editor.rows = Math.min(Math.max(editor.value.split('\\n').length, 3), 16);
      form.appendChild(editor);
    } else if (body.kind === 'file') {
      editor = h('input', { type: 'file', name: 'file', 'aria-label': body.type + ' file' });
      form.appendChild(h('label', {}, h('span', { className: 'muted', text: 'file to send (' + body.type + ')' }), editor));
    }
    var pre = h('pre', { className: 'answer', 'aria-live': 'polite' });
    form.appendChild(h('button', { type: 'submit', text: 'Send' }));
    form.appendChild(pre);
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var path = entry.path, query = [];
      Object.keys(fields).forEach(function (name) {
        var f = fields[name], value = f.input.value;
        if (f.param.in === 'path') path = path.replace('{' + name + '}', encodeURIComponent(value));
        else if (value !== '') query.push(encodeURIComponent(name) + '=' + encodeURIComponent(value));
      });
      var init = { method: entry.method, headers: {} };
      if (body.kind === 'json') { init.headers['Content-Type'] = body.type; init.body = editor.value; }
      if (body.kind === 'file') {
        if (!editor.files.length) { pre.className = 'answer failed'; pre.textContent = 'choose a file first'; return; }
        init.headers['Content-Type'] = body.type;
        init.body = editor.files[0];
      }
      var started = performance.now();
      pre.className = 'answer';
      pre.textContent = 'sending...';
      fetch(serverOf(doc) + path + (query.length ? '?' + query.join('&') : ''), init).then(function (res) {
        return res.text().then(function (text) { showAnswer(pre, res, text, performance.now() - started); });
      }).catch(function (err) {
        pre.className = 'answer failed';
        pre.textContent = 'the request failed: ' + err.message;
      });
    });
    return form;
  }

  function failure(res) {
    return res.text().then(function (text) {
      var message = text;
      try { message = JSON.parse(text).error || text; } catch (e) { /* not JSON */ }
      throw new Error(res.status + ': ' + message);
    });
  }

  function getJson(url) {
    return fetch(url, { headers: { Accept: 'application/json' } }).then(function (res) { return res.ok ? res.json() : failure(res); });
  }

  function docsPage(root) {
    var base = location.pathname.replace(/\\/docs\\/?$/, '');
    getJson(base + '/openapi.json').then(function (doc) {
      document.title = doc.info.title + ' · modelfn docs';
      root.appendChild(h('h1', { text: doc.info.title }));
      root.appendChild(h('p', { text: doc.info.description }));
      var meta = doc['x-modelfn'] || {};
      root.appendChild(tensorList('input', meta.inputs));
      root.appendChild(tensorList('output', meta.outputs));
      var about = h('p', { className: 'muted' }, 'Routes at ', h('code', { text: serverOf(doc) + '/' }),
        ' · errors are JSON {"error": "..."} · ', h('a', { href: base + '/openapi.json', text: 'openapi.json' }));
      // Behind the gateway (a prefix), its root page lists every function.
      if (serverOf(doc)) about.appendChild(h('span', {}, ' · ', h('a', { href: '/', text: 'every function' })));
      root.appendChild(about);
      (doc.tags || []).forEach(function (tag) {
        var ops = operations(doc).filter(function (o) { return (o.op.tags || [])[0] === tag.name; });
        if (!ops.length) return;
        var section = h('section', { className: 'card', id: 'tag-' + tag.name }, h('h2', { text: tag.name }), h('p', { className: 'muted', text: tag.description || '' }));
        ops.forEach(function (o) {
          var details = h('details', { 'data-operation': o.op.operationId },
            h('summary', {}, h('span', { className: 'method', text: o.method }), h('code', { text: o.path }), ' ', h('span', { className: 'muted', text: o.op.summary || '' })));
          if ((tag.name === 'function' || tag.name === 'inference') && o.path.indexOf('{version}') < 0) details.open = true;
          if (o.op.description) details.appendChild(h('p', { text: o.op.description }));
          details.appendChild(tryForm(doc, o));
          var ok = (o.op.responses || {})['200'], content = ok && ok.content && ok.content['application/json'];
          if (content && content.example !== undefined) {
            details.appendChild(h('p', { className: 'muted', text: 'An answer looks like:' }));
            details.appendChild(h('pre', { className: 'example', text: formatJson(content.example) }));
          }
          section.appendChild(details);
        });
        root.appendChild(section);
      });
    }).catch(function (err) {
      root.appendChild(h('p', { className: 'answer failed', text: 'cannot load ' + base + '/openapi.json: ' + err.message }));
    });
  }

  // The gateway: one card per function, each with a form for the request it is most likely tried with.
  function gatewayPage(root) {
    getJson('/').then(function (index) {
      root.appendChild(h('h1', { text: 'modelfn' }));
      root.appendChild(h('p', { className: 'muted', text: index.functions.length + ' functions · version ' + index.version + ' · JSON clients get this list at GET / as JSON' }));
      index.functions.forEach(function (fn) {
        var card = h('section', { className: 'card', id: 'fn-' + fn.name, 'data-function': fn.name });
        var docs = fn.prefix + '/docs';
        card.appendChild(h('header', {}, h('h2', { text: fn.name }), h('code', { text: fn.prefix + '/' }),
          h('span', { className: 'muted', text: fn.replicas + (fn.replicas === 1 ? ' replica' : ' replicas') }),
          h('a', { href: docs, text: 'docs' }), h('a', { href: fn.prefix + '/openapi.json', text: 'openapi.json' })));
        root.appendChild(card);
        getJson(fn.prefix + '/openapi.json').then(function (doc) {
          var meta = doc['x-modelfn'] || {};
          card.appendChild(h('p', { text: doc.info.description }));
          card.appendChild(tensorList('input', meta.inputs));
          card.appendChild(tensorList('output', meta.outputs));
          var ops = operations(doc).filter(function (o) { return bodyOf(o.op).kind !== 'none' && o.path.indexOf('{version}') < 0; });
          var preferred = ops.filter(function (o) { return (o.op.tags || [])[0] === 'function'; })[0]
            || ops.filter(function (o) { return o.path === '/predict'; })[0] || ops[0];
          var select = h('select', { 'aria-label': 'route' });
          ops.forEach(function (o, i) {
            var option = h('option', { value: String(i), text: o.method + ' ' + fn.prefix + o.path + ' · ' + (o.op.summary || '') });
            if (o === preferred) option.selected = true;
            select.appendChild(option);
          });
          var slot = h('div', {});
          var show = function () { slot.textContent = ''; slot.appendChild(tryForm(doc, ops[Number(select.value)])); };
          select.addEventListener('change', show);
          card.appendChild(h('label', {}, h('span', { className: 'muted', text: 'try a route' }), select));
          card.appendChild(slot);
          if (ops.length) show();
        }).catch(function (err) {
          card.appendChild(h('p', { className: 'answer failed', text: 'unavailable: ' + err.message }));
        });
      });
    }).catch(function (err) {
      root.appendChild(h('p', { className: 'answer failed', text: 'cannot load the function list: ' + err.message }));
    });
  }

  var root = document.getElementById('app');
  if (document.body.getAttribute('data-page') === 'gateway') gatewayPage(root); else docsPage(root);
})();
`;

function page(title: string, kind: 'gateway' | 'docs'): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${title}</title>
<style>${STYLE}</style>
</head>
<body data-page="${kind}">
<main id="app"></main>
<noscript>This page needs JavaScript; the same information is at openapi.json.</noscript>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

/**
 * The gateway's root page for browsers: every function with a form to try it.
 *
 * @example gateway.get('/', (c) => (wantsHtml(c.req.header('accept')) ? c.html(gatewayPage()) : c.json(index)));
 */
export function gatewayPage(): string {
  return page('modelfn', 'gateway');
}

/**
 * A function's interactive docs page; it reads `openapi.json` beside it.
 *
 * @example app.get('/docs', (c) => c.html(docsPage(fn.name)));
 */
export function docsPage(name: string): string {
  return page(`${name.replace(/[^a-z0-9-]/g, '')} · modelfn docs`, 'docs');
}
