/**
 * The pages people open in a browser, rendered on the server: a function's docs page
 * (`GET /docs`) and the gateway's root page (`GET /` with `Accept: text/html`, in embedded mode
 * and at nginx alike), with its live view of every function. Everything is in the HTML as
 * served, so a reader without JavaScript and a capture taken at once see it all; the script only
 * sends the forms and refreshes the live figures. Self-contained: no CDN, no downloaded assets.
 */
import type { FunctionStats } from '../core/stats.ts';
import type { CustomRoute } from './openapi.ts';

/** True when a request's Accept header asks for a page rather than JSON. */
export function wantsHtml(accept: string | undefined): boolean {
  return /text\/html/i.test(accept ?? '');
}

const escapeHtml = (text: unknown) => String(text).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/**
 * JSON that fits the width stays on one line; long lists of scalars wrap like text. Plain
 * ES2017 source, so the same code runs on the server and in the page (a compiler's rendering of
 * a TypeScript function would differ between tools, and the generated page must not).
 */
const FORMAT_JSON = `function formatJson(value, indent, width) {
  indent = indent || '';
  width = width || 88;
  function scalar(v) { return v === null || typeof v !== 'object'; }
  function flat(v) {
    if (scalar(v)) return JSON.stringify(v);
    if (Array.isArray(v)) return '[' + v.map(flat).join(', ') + ']';
    return '{' + Object.keys(v).map(function (k) { return JSON.stringify(k) + ': ' + flat(v[k]); }).join(', ') + '}';
  }
  var one = flat(value);
  if (scalar(value) || indent.length + one.length <= width) return one;
  var inner = indent + '  ';
  if (Array.isArray(value)) {
    if (value.every(scalar)) {
      var lines = [], line = '';
      value.forEach(function (x) {
        var item = JSON.stringify(x);
        if (line && inner.length + line.length + item.length + 2 > width) { lines.push(line + ','); line = ''; }
        line += (line ? ', ' : '') + item;
      });
      lines.push(line);
      return '[\\n' + lines.map(function (l) { return inner + l; }).join('\\n') + '\\n' + indent + ']';
    }
    return '[\\n' + value.map(function (x) { return inner + formatJson(x, inner, width); }).join(',\\n') + '\\n' + indent + ']';
  }
  return '{\\n' + Object.keys(value).map(function (k) {
    return inner + JSON.stringify(k) + ': ' + formatJson(value[k], inner, width);
  }).join(',\\n') + '\\n' + indent + '}';
}`;

/**
 * Replicas as the live view shows them, on the server and in the page alike: the ready count,
 * with the declared one when they differ ("0 of 1" for a function that fails); an asleep function
 * has none running, by design.
 */
const REPLICAS_TEXT = `function replicasText(state, ready, declared) {
  if (state === 'asleep') return '0';
  return ready === declared ? String(ready) : ready + ' of ' + declared;
}`;
const replicasText = new Function(`return ${REPLICAS_TEXT}`)() as (state: string, ready: number, declared: number) => string;

/**
 * A version's share of the split, on the server and in the page alike: its percent of the
 * requests, or of the copies it gets as a shadow.
 */
const SHARE_TEXT = `function shareText(traffic, shadow) {
  return shadow ? 'shadow ' + shadow + '%' : (traffic || 0) + '%';
}`;
const shareText = new Function(`return ${SHARE_TEXT}`)() as (traffic: number, shadow?: number) => string;

/**
 * Formats JSON for reading (the pages' example requests and answers).
 *
 * @example formatJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }) // '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
 */
// Our own constant source, shared with the page script.
export const formatJson = new Function(`return ${FORMAT_JSON}`)() as (value: unknown, indent?: string, width?: number) => string;

const STYLE = `
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --card: #f6f8fa; --accent: #0969da; --bad: #cf222e; --good: #1a7f37; --warn: #9a6700; --idle: #6e7781; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9198a1; --line: #30363d; --card: #161b22; --accent: #4493f8; --bad: #f85149; --good: #3fb950; --warn: #d29922; --idle: #8b949e; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 72rem; padding: 1.5rem; font: 15px/1.5 system-ui, sans-serif; color: var(--fg); }
h1 { margin: 0 0 .25rem; font-size: 1.6rem; } h2 { margin: 0; font-size: 1.25rem; }
a { color: var(--accent); }
code, pre, textarea, select, input { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
.muted { color: var(--muted); }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.25rem; margin: 1rem 0; background: var(--card); }
.card header { display: flex; flex-wrap: wrap; gap: .25rem 1rem; align-items: baseline; }
table.tensors { margin: .5rem 0; border-collapse: collapse; font-size: 13px; }
table.tensors th, table.tensors td { padding: .1rem .75rem .1rem 0; text-align: left; vertical-align: top; }
table.tensors thead th { color: var(--muted); font-weight: 400; }
table.tensors td:nth-child(3), table.tensors td:nth-child(4) { font-family: ui-monospace, monospace; }
.label { display: inline-block; margin-right: .5rem; white-space: nowrap; }
dl.facts { display: flex; flex-wrap: wrap; gap: .1rem 1.25rem; margin: .25rem 0 .75rem; font-size: 13px; }
dl.facts div { display: flex; gap: .35rem; } dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
details { border-top: 1px solid var(--line); padding: .5rem 0; }
summary { cursor: pointer; }
.method { display: inline-block; min-width: 3.5rem; font-weight: 600; font-family: ui-monospace, monospace; }
form { display: grid; gap: .5rem; margin-top: .5rem; }
form[hidden] { display: none; }
label { display: grid; gap: .15rem; }
textarea { width: 100%; min-height: 5rem; resize: vertical; padding: .5rem; border: 1px solid var(--line); border-radius: 6px; background: transparent; color: inherit; }
input[type=text], select { padding: .3rem .4rem; border: 1px solid var(--line); border-radius: 6px; background: transparent; color: inherit; }
.buttons { display: flex; flex-wrap: wrap; gap: .5rem; }
button { padding: .35rem 1rem; border: 0; border-radius: 6px; background: var(--accent); color: #fff; font-weight: 600; cursor: pointer; }
button.secondary { background: transparent; color: var(--accent); border: 1px solid var(--accent); }
pre.answer { margin: .5rem 0 0; padding: .5rem; border-left: 3px solid var(--line); white-space: pre-wrap; word-break: break-word; max-height: 30rem; overflow: auto; }
pre.answer:empty { display: none; }
pre.answer.ok { border-color: var(--good); } pre.answer.failed { border-color: var(--bad); }
pre.example { margin: .5rem 0; padding: .5rem; border: 1px dashed var(--line); border-radius: 6px; white-space: pre-wrap; }
.with-picture { display: flex; gap: .75rem; align-items: flex-start; } .with-picture textarea { flex: 1; }
figure.picture { margin: 0; text-align: center; font-size: 12px; } figure.picture svg { display: block; border: 1px solid var(--line); }
pre.snippet { margin: .25rem 0 .5rem; padding: .5rem; border: 1px solid var(--line); border-radius: 6px; white-space: pre-wrap; word-break: break-all; user-select: all; }
pre.failure { margin: .5rem 0; padding: .5rem .75rem; border-left: 3px solid var(--bad); white-space: pre-wrap; word-break: break-word; }
.status { font-weight: 600; }
.state { display: inline-block; padding: 0 .5rem; border-radius: 1rem; font-size: 13px; font-weight: 600; color: #fff; background: var(--idle); }
.state-ready { background: var(--good); } .state-failed, .state-unavailable { background: var(--bad); }
.state-loading, .state-waking, .state-draining { background: var(--warn); } .state-asleep { background: var(--idle); }
table.live { width: 100%; border-collapse: collapse; margin: .75rem 0 .25rem; font-variant-numeric: tabular-nums; }
table.live th, table.live td { padding: .3rem .6rem; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
table.live th:first-child, table.live td:first-child, table.live th:nth-child(2), table.live td:nth-child(2) { text-align: left; }
table.live td.reason { white-space: normal; text-align: left; color: var(--bad); font-size: 13px; }
table.live tr.busy td[data-field="rps"] { font-weight: 700; }
table.live tr.version td { border-bottom-style: dashed; font-size: 13px; } table.live tr.version td:first-child { padding-left: 1.5rem; }
.share { color: var(--muted); }
table.live td.slow { color: var(--bad); font-weight: 700; }
table.live td.chart { padding-top: 0; padding-bottom: 0; }
table.live svg { display: block; border-bottom: 1px solid var(--line); }
polyline.series-rps { stroke: var(--accent); stroke-width: 1.5; } polyline.series-p99 { stroke: var(--warn); stroke-width: 1.5; }
span.series-rps { color: var(--accent); } span.series-p99 { color: var(--warn); }
`;

/**
 * The page script, plain ES2017 for any browser. It only ever puts text into the page
 * (textContent), never markup, so nothing a document or an answer holds can run.
 */
const SCRIPT = `
(function () {
  'use strict';
  var formatJson = ${FORMAT_JSON};
  var replicasText = ${REPLICAS_TEXT};
  var shareText = ${SHARE_TEXT};

  function showAnswer(pre, res, text, ms) {
    var body = text;
    try { body = formatJson(JSON.parse(text)); } catch (e) { if (body.length > 20000) body = body.slice(0, 20000) + '\\n...'; }
    pre.className = 'answer ' + (res.ok ? 'ok' : 'failed');
    pre.textContent = '';
    var status = document.createElement('span');
    status.className = 'status';
    status.textContent = res.status + ' ' + res.statusText;
    pre.appendChild(status);
    pre.appendChild(document.createTextNode(' (' + Math.round(ms) + ' ms)\\n' + body));
  }

  function send(form, body) {
    var pre = form.querySelector('pre.answer');
    var url = form.getAttribute('data-url'), query = [];
    Array.prototype.forEach.call(form.querySelectorAll('input[data-in]'), function (input) {
      if (input.getAttribute('data-in') === 'path') url = url.replace('{' + input.name + '}', encodeURIComponent(input.value));
      else if (input.value !== '') query.push(encodeURIComponent(input.name) + '=' + encodeURIComponent(input.value));
    });
    var init = { method: form.getAttribute('data-method'), headers: {} };
    if (body !== undefined) { init.headers['Content-Type'] = form.getAttribute('data-type'); init.body = body; }
    var started = performance.now();
    pre.className = 'answer';
    pre.textContent = 'sending...';
    return fetch(url + (query.length ? '?' + query.join('&') : ''), init).then(function (res) {
      return res.text().then(function (text) { showAnswer(pre, res, text, performance.now() - started); });
    }).catch(function (err) {
      pre.className = 'answer failed';
      pre.textContent = 'the request failed: ' + err.message;
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll('form.try'), function (form) {
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var editor = form.querySelector('textarea'), file = form.querySelector('input[type=file]');
      if (file && !file.files.length) {
        var pre = form.querySelector('pre.answer');
        pre.className = 'answer failed';
        pre.textContent = 'choose a file first, or send the example';
        return;
      }
      send(form, editor ? editor.value : file ? file.files[0] : undefined);
    });
    var example = form.querySelector('button[data-example]');
    if (example) example.addEventListener('click', function () {
      fetch(example.getAttribute('data-example')).then(function (res) {
        if (!res.ok) throw new Error('the example file answered ' + res.status);
        return res.blob();
      }).then(function (blob) { return send(form, blob); }).catch(function (err) {
        var pre = form.querySelector('pre.answer');
        pre.className = 'answer failed';
        pre.textContent = err.message;
      });
    });
  });

  // A card's route picker shows the form of the chosen route.
  Array.prototype.forEach.call(document.querySelectorAll('select[data-routes]'), function (select) {
    var card = select.closest('[data-function]');
    select.addEventListener('change', function () {
      Array.prototype.forEach.call(card.querySelectorAll('form.try'), function (form, i) { form.hidden = String(i) !== select.value; });
    });
  });

  // The live view's memory: each refresh's requests/s and p99, kept in the page for 15 minutes
  // and drawn as two lines per function (each scaled to its own largest value in the window).
  var HISTORY_MS = 15 * 60 * 1000, CHART_W = 160, CHART_H = 32;
  var history = {};
  function remember(name, rps, p99) {
    var now = Date.now(), list = history[name] || (history[name] = []);
    list.push({ t: now, rps: rps || 0, p99: p99 || 0 });
    while (list.length && list[0].t < now - HISTORY_MS) list.shift();
    var svg = document.querySelector('svg[data-chart="' + name + '"]');
    if (!svg) return;
    var peaks = {};
    ['rps', 'p99'].forEach(function (key) {
      var max = 0;
      list.forEach(function (p) { if (p[key] > max) max = p[key]; });
      peaks[key] = max;
      var points = list.map(function (p) {
        var x = CHART_W * (p.t - (now - HISTORY_MS)) / HISTORY_MS;
        var y = CHART_H - 1 - (CHART_H - 2) * (max ? p[key] / max : 0);
        return x.toFixed(1) + ',' + y.toFixed(1);
      }).join(' ');
      svg.querySelector('polyline[data-series="' + key + '"]').setAttribute('points', points);
    });
    var minutes = Math.max(1, Math.round((now - list[0].t) / 60000));
    var label = 'the last ' + minutes + ' min: requests/s up to ' + figure(peaks.rps) + ', p99 up to ' + figure(peaks.p99, ' ms');
    svg.setAttribute('aria-label', label);
    svg.querySelector('title').textContent = label;
  }

  // The live view: each function's /stats, every two seconds.
  var rows = document.querySelectorAll('tr[data-live]');
  function figure(v, unit) { return v === null || v === undefined ? '–' : v + (unit || ''); }
  function setState(name, state, reason) {
    var row = document.querySelector('tr[data-live="' + name + '"]');
    var card = document.querySelector('[data-function="' + name + '"]');
    [row && row.querySelector('[data-field=state]'), card && card.querySelector('header .state')].forEach(function (badge) {
      if (!badge) return;
      badge.textContent = state;
      badge.className = 'state state-' + state;
    });
    if (card) card.setAttribute('data-state', state);
    var cell = row && row.querySelector('[data-field=reason]');
    if (cell) cell.textContent = reason || '';
  }
  // A row's figures (a function's, or one of its versions') from its part of a /stats answer.
  function fillRow(row, body) {
    var field = function (f) { return row.querySelector('[data-field=' + f + ']'); };
    field('replicas').textContent = replicasText(body.state, body.readyReplicas, body.replicas);
    field('rps').textContent = figure(body.requestsPerSecond);
    field('p50').textContent = figure(body.latencyMs && body.latencyMs.p50, ' ms');
    field('p99').textContent = figure(body.latencyMs && body.latencyMs.p99, ' ms');
    field('p99').className = body.latencyMs && body.latencyMs.p99 > 1000 ? 'slow' : '';
    field('batch').textContent = figure(body.batchSize);
    field('errors').textContent = figure(body.errorsPerSecond);
    field('errors').className = body.errorsPerSecond > 0 ? 'slow' : '';
    row.className = (row.hasAttribute('data-version') ? 'version' : '') + (body.requestsPerSecond > 0 ? ' busy' : '');
  }
  function versionRows(name) { return Array.prototype.slice.call(document.querySelectorAll('tr[data-live-version="' + name + '"]')); }
  function clearRow(row, state) {
    var badge = row.querySelector('[data-field=state]');
    badge.textContent = state;
    badge.className = 'state state-' + state;
    ['replicas', 'rps', 'p50', 'p99', 'batch', 'errors'].forEach(function (f) { row.querySelector('[data-field=' + f + ']').textContent = '–'; });
    row.className = 'version';
  }
  function update(row) {
    var name = row.getAttribute('data-live'), prefix = row.getAttribute('data-prefix');
    var field = function (f) { return row.querySelector('[data-field=' + f + ']'); };
    return fetch(prefix + '/stats', { headers: { Accept: 'application/json' }, cache: 'no-store' }).then(function (res) {
      return res.text().then(function (text) {
        var body = {};
        try { body = JSON.parse(text); } catch (e) { /* not JSON */ }
        if (res.status === 401) {
          // A function with API keys shows its figures to key holders only: the page has none.
          setState(name, 'protected', 'its figures need an API key');
          ['replicas', 'rps', 'p50', 'p99', 'batch', 'errors'].forEach(function (f) { field(f).textContent = '–'; });
          row.className = '';
          versionRows(name).forEach(function (r) { clearRow(r, 'protected'); });
          return;
        }
        if (!res.ok) {
          // No replica answers (nginx's 502/503): nothing runs, so nothing to count.
          var state = res.status === 503 || res.status === 502 ? 'unavailable' : 'failed';
          setState(name, state, body.error || res.status + ' ' + res.statusText);
          field('replicas').textContent = replicasText(state, 0, Number(row.getAttribute('data-replicas')));
          ['rps', 'errors'].forEach(function (f) { field(f).textContent = '0'; });
          row.className = '';
          versionRows(name).forEach(function (r) { clearRow(r, state); });
          return;
        }
        setState(name, body.state, body.reason);
        remember(name, body.requestsPerSecond, body.latencyMs && body.latencyMs.p99);
        fillRow(row, body);
        (body.versions || []).forEach(function (v) {
          var share = shareText(v.traffic, v.shadow);
          // The split in force (modelfn traffic may have changed the declared one): in the card too.
          Array.prototype.forEach.call(document.querySelectorAll('[data-function="' + name + '"] li[data-version="' + v.version + '"] [data-field=share]'), function (el) { el.textContent = share; });
          var line = document.querySelector('tr[data-live-version="' + name + '"][data-version="' + v.version + '"]');
          if (!line) return;
          line.querySelector('[data-field=share]').textContent = share;
          var badge = line.querySelector('[data-field=state]');
          badge.textContent = v.state;
          badge.className = 'state state-' + v.state;
          line.querySelector('[data-field=reason]').textContent = v.reason || '';
          fillRow(line, v);
        });
      });
    }).catch(function (err) { setState(name, 'unavailable', err.message); });
  }
  function tick() {
    Promise.all(Array.prototype.map.call(rows, update)).then(function () {
      var stamp = document.querySelector('[data-live-updated]');
      if (stamp) stamp.textContent = 'updated ' + new Date().toLocaleTimeString();
      setTimeout(tick, 2000);
    });
  }
  if (rows.length) tick();

  // A docs page's list of versions: the split in force, once, from the function's own figures.
  var versions = document.querySelector('section.versions[data-stats]');
  if (versions) fetch(versions.getAttribute('data-stats'), { headers: { Accept: 'application/json' }, cache: 'no-store' }).then(function (res) {
    return res.ok ? res.json() : {};
  }).then(function (body) {
    (body.versions || []).forEach(function (v) {
      var share = versions.querySelector('li[data-version="' + v.version + '"] [data-field=share]');
      if (share) share.textContent = shareText(v.traffic, v.shadow);
    });
  }).catch(function () { /* the declared split stays */ });
})();
`;

function shell(title: string, kind: 'gateway' | 'docs', body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body data-page="${kind}">
<main id="app">
${body}
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

// ---- OpenAPI documents as operations ---------------------------------------------------------

type Json = Record<string, any>;

interface Operation {
  id: string;
  tag: string;
  method: string;
  /** The path a person calls at the gateway (or at the server, when served alone). */
  url: string;
  summary: string;
  description?: string;
  params: { name: string; in: string; description?: string; value?: string }[];
  body: { kind: 'none' } | { kind: 'json'; type: string; example?: unknown } | { kind: 'file'; type: string; exampleFile?: string };
  answerExample?: unknown;
}

/**
 * Every operation of a document, with the path a person calls: the function's routes under its
 * prefix, the protocol's model routes at `/v2/models/<name>/...` as the gateway routes them.
 */
function operations(doc: Json): Operation[] {
  const server = String(doc.servers?.[0]?.url ?? '/').replace(/\/$/, '');
  const out: Operation[] = [];
  for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
    for (const method of ['get', 'post', 'put', 'patch', 'delete']) {
      const op = item[method] as Json | undefined;
      if (!op) continue;
      const content = op.requestBody?.content as Json | undefined;
      let body: Operation['body'] = { kind: 'none' };
      if (content?.['application/json']) body = { kind: 'json', type: 'application/json', example: content['application/json'].example };
      else if (content) body = { kind: 'file', type: Object.keys(content)[0], ...(op['x-example-file'] ? { exampleFile: server + op['x-example-file'] } : {}) };
      out.push({
        id: op.operationId,
        tag: op.tags?.[0] ?? '',
        method: method.toUpperCase(),
        url: path.startsWith('/v2/models/') ? path : server + path,
        summary: op.summary ?? '',
        description: op.description,
        params: (op.parameters ?? []).map((p: Json) => ({ name: p.name, in: p.in, description: p.description, value: p.schema?.enum?.[0] })),
        body,
        answerExample: op.responses?.['200']?.content?.['application/json']?.example ?? op.responses?.['200']?.content?.['text/plain']?.example,
      });
    }
  }
  return out;
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/**
 * A function's versions, when it has several, each with its share of the split and how to reach
 * it. The declared split is what the document knows; the page script shows the split in force
 * from the function's `/stats` (`stats`, on its docs page; the live view's refresh on the
 * gateway page), where `modelfn traffic` may have changed it. On its docs page (`shown`), which
 * version the page describes. `share` overrides a version's share text (nginx's lookup).
 */
function versionList(meta: Json, options: { shown?: boolean; stats?: string; share?: (version: string) => string | undefined } = {}): string {
  if (!Array.isArray(meta.versions)) return '';
  const items = (meta.versions as Json[]).map((v) => {
    const share = options.share?.(v.version) ?? escapeHtml(shareText(v.traffic, v.shadow));
    return `<li data-version="${escapeHtml(v.version)}"><strong>version ${escapeHtml(v.version)}</strong>${options.shown && v.version === meta.version ? ' (this page)' : ''}: <span data-field="share">${share}</span> · <code>/v2/models/${escapeHtml(meta.name)}/versions/${escapeHtml(v.version)}/infer</code></li>`;
  }).join('');
  const stats = options.stats ? ` data-stats="${escapeHtml(options.stats)}"` : '';
  return `<section class="versions"${stats}><p class="muted">Versions and their share of the requests (every answer names its own in the X-Modelfn-Version header; send X-Modelfn-Traffic-Key to keep one client on one version):</p><ul>${items}</ul></section>`;
}

/** The model's inputs and outputs, each output with the class labels it names, then the model's facts. */
function tensorList(meta: Json): string {
  const rows = (role: string, list: Json[] | undefined) => (list ?? []).map((t) => `<tr><th scope="row">${role}</th><td><code>${escapeHtml(t.name)}</code></td><td>${escapeHtml(t.datatype)}</td><td>${shapeText(t.shape)}</td>`
    + `<td class="labels">${Array.isArray(t.labels) ? (t.labels as unknown[]).map((l, i) => `<span class="label"><span class="muted">${i}</span> ${escapeHtml(l)}</span>`).join(' ') : ''}</td></tr>`);
  const table = `<table class="tensors"><thead><tr><th></th><th>name</th><th>datatype</th><th>shape</th><th>class labels</th></tr></thead>
<tbody>${[...rows('input', meta.inputs), ...rows('output', meta.outputs)].join('')}</tbody></table>`;
  return `${table}${factList(meta.model)}`;
}

const bytesText = (bytes: number) => (bytes < 1024 ? `${bytes} B` : bytes < 1024 ** 2 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 ** 2).toFixed(1)} MiB`);

/** The model file and what runs it, in one line of facts. */
function factList(facts: Json | undefined): string {
  if (!facts) return '';
  const opsets = Object.entries<number>(facts.opsets ?? {}).map(([domain, version]) => `${domain || 'ai.onnx'} ${version}`).join(', ');
  const items = [
    ['file', `${facts.file}${facts.bytes === undefined ? '' : `, ${bytesText(facts.bytes)}`}`],
    ['opset', opsets],
    ['IR version', facts.irVersion],
    ['producer', facts.producer],
    ['onnxruntime', facts.onnxruntime],
    ['execution provider', facts.executionProvider],
    ['loaded in', facts.loadMs === undefined ? undefined : `${facts.loadMs} ms`],
    ['warm-up', facts.warmUpMs === undefined ? undefined : `${facts.warmUpMs} ms`],
  ].filter(([, v]) => v !== undefined && v !== '');
  return `<dl class="facts">${items.map(([k, v]) => `<div><dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd></div>`).join('')}</dl>`;
}

/**
 * The first instance of an example request when it looks like an image: a square of numbers at
 * least 8 on a side (digits' 64 pixels; iris's 4 measurements are not one).
 */
function examplePicture(example: unknown): { side: number; values: number[] } | undefined {
  const body = example as { instances?: unknown[]; inputs?: { shape?: number[]; data?: unknown }[] } | undefined;
  let values: unknown[] | undefined;
  if (Array.isArray(body?.instances)) values = [body.instances[0]].flat(Infinity);
  else if (Array.isArray(body?.inputs) && body.inputs.length === 1 && Array.isArray(body.inputs[0].shape)) {
    const [input] = body.inputs;
    const perInstance = input.shape!.slice(1).reduce((a, b) => a * b, 1);
    values = [input.data].flat(Infinity).slice(0, perInstance);
  }
  if (!values?.length || !values.every((v) => typeof v === 'number' && Number.isFinite(v))) return undefined;
  const side = Math.sqrt(values.length);
  return Number.isInteger(side) && side >= 8 && side <= 64 ? { side, values: values as number[] } : undefined;
}

/** An image-like example drawn beside its numbers: higher values darker, as the digits are drawn. */
function pictureSvg(picture: { side: number; values: number[] }): string {
  const { side, values } = picture;
  const low = Math.min(...values);
  const span = Math.max(...values) - low || 1;
  const cells = values.map((v, i) => {
    const grey = Math.round(255 - ((v - low) / span) * 255);
    return `<rect x="${i % side}" y="${Math.floor(i / side)}" width="1" height="1" fill="rgb(${grey},${grey},${grey})"/>`;
  }).join('');
  return `<figure class="picture"><svg viewBox="0 0 ${side} ${side}" width="112" height="112" shape-rendering="crispEdges" role="img" aria-label="the example's first instance as a ${side}×${side} image">${cells}</svg><figcaption class="muted">the example, ${side}×${side}</figcaption></figure>`;
}

/** A form that sends one request to an operation; the script shows the answer under it. */
function tryForm(op: Operation, hidden = false): string {
  const params = op.params.map((p) => `<label><span class="muted">${escapeHtml(p.name)} (${escapeHtml(p.in)})</span><input type="text" name="${escapeHtml(p.name)}" data-in="${escapeHtml(p.in)}" placeholder="${escapeHtml(p.description ?? p.name)}" value="${escapeHtml(p.value ?? '')}"></label>`);
  let editor = '';
  let example = '';
  if (op.body.kind === 'json') {
    const text = op.body.example === undefined ? '' : formatJson(op.body.example);
    editor = `<textarea name="body" spellcheck="false" aria-label="JSON request body" rows="${Math.min(Math.max(text.split('\n').length, 3), 16)}">${escapeHtml(text)}</textarea>`;
    const picture = examplePicture(op.body.example);
    if (picture) editor = `<div class="with-picture">${editor}${pictureSvg(picture)}</div>`;
  } else if (op.body.kind === 'file') {
    editor = `<label><span class="muted">file to send (${escapeHtml(op.body.type)})</span><input type="file" name="file" aria-label="${escapeHtml(op.body.type)} file"></label>`;
    if (op.body.exampleFile) {
      example = `<button type="button" class="secondary" data-example="${escapeHtml(op.body.exampleFile)}">Send the example (${escapeHtml(op.body.exampleFile.split('/').pop())})</button>`;
    }
  }
  const type = op.body.kind === 'none' ? '' : ` data-type="${escapeHtml(op.body.type)}"`;
  return `<form class="try" data-operation="${escapeHtml(op.id)}" data-method="${op.method}" data-url="${escapeHtml(op.url)}"${type}${hidden ? ' hidden' : ''}>
${[...params, editor].filter(Boolean).join('\n')}
<div class="buttons">${example}<button type="submit">Send</button></div>
<pre class="answer" aria-live="polite"></pre>
</form>`;
}

// ---- copy-as-curl and Python -------------------------------------------------------------------

/** A value as a Python literal (JSON's null, true and false are Python's None, True and False). */
function pythonLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'None';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number' || typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(pythonLiteral).join(', ')}]`;
  return `{${Object.entries(value as object).map(([k, v]) => `${JSON.stringify(k)}: ${pythonLiteral(v)}`).join(', ')}}`;
}

const shellQuote = (text: string) => `'${text.replace(/'/g, "'\\''")}'`;

/** The URL a snippet calls: the operation's path at the origin the page was asked from, with its parameters' values. */
function snippetUrl(op: Operation, origin: string): string {
  let url = op.url;
  const query: string[] = [];
  for (const p of op.params) {
    if (p.in === 'path') url = url.replace(`{${p.name}}`, encodeURIComponent(p.value ?? p.name));
    else if (p.in === 'query' && p.value !== undefined) query.push(`${encodeURIComponent(p.name)}=${encodeURIComponent(p.value)}`);
  }
  return `${origin}${url}${query.length ? `?${query.join('&')}` : ''}`;
}

/** The same request as the form sends, as a curl command and in Python with requests. */
function snippets(op: Operation, origin: string): { curl: string; python: string } {
  const url = snippetUrl(op, origin);
  const body = op.body;
  const call = op.method.toLowerCase();
  if (body.kind === 'json' && body.example !== undefined) {
    return {
      curl: `curl -s ${shellQuote(url)} -H 'Content-Type: application/json' -d ${shellQuote(JSON.stringify(body.example))}`,
      python: `import requests\n\nanswer = requests.${call}(${JSON.stringify(url)}, json=${pythonLiteral(body.example)})\nprint(answer.status_code, answer.json())`,
    };
  }
  if (body.kind === 'file') {
    const file = body.exampleFile?.split('/').pop() ?? 'FILE';
    return {
      curl: `curl -s ${shellQuote(url)} -H ${shellQuote(`Content-Type: ${body.type}`)} --data-binary @${file}`,
      python: `import requests\n\nwith open(${JSON.stringify(file)}, "rb") as f:\n    answer = requests.${call}(${JSON.stringify(url)}, data=f.read(), headers={"Content-Type": ${JSON.stringify(body.type)}})\nprint(answer.status_code, answer.json())`,
    };
  }
  return {
    curl: `curl -s ${op.method === 'GET' ? '' : `-X ${op.method} `}${shellQuote(url)}`,
    python: `import requests\n\nanswer = requests.${call}(${JSON.stringify(url)})\nprint(answer.status_code, answer.text)`,
  };
}

function snippetBlock(op: Operation, origin: string): string {
  const { curl, python } = snippets(op, origin);
  return `<div class="snippets"><p class="muted">As curl:</p><pre class="snippet" data-snippet="curl">${escapeHtml(curl)}</pre>
<p class="muted">In Python (requests):</p><pre class="snippet" data-snippet="python">${escapeHtml(python)}</pre></div>`;
}

/** The origin snippets call: the Host the page was asked with, when it is a plain host name, else localhost:8080. */
function originOf(host: string | undefined): string {
  return `http://${host && /^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$/.test(host) ? host : 'localhost:8080'}`;
}

// ---- the docs page -----------------------------------------------------------------------------

/**
 * A function's docs page, from its OpenAPI document: every route with the path to call, a form
 * that sends it, and an example answer.
 *
 * @example app.get('/docs', (c) => c.html(docsPage(openApiDocument(fn, model, routes, '/iris'))));
 */
export function docsPage(doc: Json, options: { host?: string } = {}): string {
  const origin = originOf(options.host);
  const name = String(doc.info.title);
  const server = String(doc.servers?.[0]?.url ?? '/').replace(/\/$/, '');
  const ops = operations(doc);
  const sections = (doc.tags as Json[] ?? []).map((tag) => {
    const mine = ops.filter((o) => o.tag === tag.name);
    if (!mine.length) return '';
    const items = mine.map((o) => {
      const open = (tag.name === 'function' || tag.name === 'inference') && !o.url.includes('{version}');
      const shown = typeof o.answerExample === 'string' ? o.answerExample : formatJson(o.answerExample);
      const answer = o.answerExample === undefined ? '' : `<p class="muted">An answer looks like:</p><pre class="example">${escapeHtml(shown)}</pre>`;
      return `<details data-operation="${escapeHtml(o.id)}"${open ? ' open' : ''}>
<summary><span class="method">${o.method}</span><code>${escapeHtml(o.url)}</code> <span class="muted">${escapeHtml(o.summary)}</span></summary>
${o.description ? `<p>${escapeHtml(o.description)}</p>` : ''}${tryForm(o)}${answer}
${snippetBlock(o, origin)}
</details>`;
    }).join('\n');
    return `<section class="card" id="tag-${escapeHtml(tag.name)}"><h2>${escapeHtml(tag.name)}</h2><p class="muted">${escapeHtml(tag.description ?? '')}</p>\n${items}\n</section>`;
  }).join('\n');
  const where = server ? `<code>${escapeHtml(server)}/…</code> and <code>/v2/models/${escapeHtml(name)}/…</code>` : '<code>/</code>';
  return shell(`${name} · modelfn docs`, 'docs', `${server ? '<p class="muted"><a href="/">← every function</a></p>' : ''}
<h1>${escapeHtml(name)}</h1>
<p>${escapeHtml(doc.info.description)}</p>
${versionList(doc['x-modelfn'] ?? {}, { shown: true, stats: `${server}/stats` })}${tensorList(doc['x-modelfn'] ?? {})}
<p class="muted">Routes at ${where} · errors are JSON {"error": "..."} · <a href="${escapeHtml(server)}/openapi.json">openapi.json</a></p>
${sections}`);
}

/** What a person can do about a function that does not serve. */
function failureHelp(fn: { name: string; description?: string }, reason: string, routes: readonly CustomRoute[], prefix: string): string {
  const own = routes.length ? `<p>Its own routes, once it loads: ${routes.map((r) => `<code>${escapeHtml(r.method)} ${escapeHtml(prefix + r.path)}</code>`).join(', ')}.</p>` : '';
  return `<pre class="failure">${escapeHtml(reason)}</pre>
${fn.description ? `<p>${escapeHtml(fn.description)}</p>` : ''}${own}
<ul>
<li>The message says which file and, for code, which line and column. Fix it and save: <code>npm run dev</code> reloads the function at once, and <code>npm start</code> retries a function that failed when its folder changes.</li>
<li><code>npx modelfn list</code> loads every function and shows which ones fail and why.</li>
<li>Until then its routes answer 503 with this reason, and the other functions keep serving.</li>
</ul>`;
}

/**
 * The docs page of a function that does not serve (its declaration or model failed to load, or
 * it is still loading): the reason and what to do, instead of a bare error.
 */
export function failedDocsPage(fn: { name: string; description?: string }, reason: string, routes: readonly CustomRoute[], prefix: string): string {
  return shell(`${fn.name} · modelfn docs`, 'docs', `${prefix ? '<p class="muted"><a href="/">← every function</a></p>' : ''}
<h1>${escapeHtml(fn.name)} <span class="state state-failed">not serving</span></h1>
${failureHelp(fn, reason, routes, prefix)}`);
}

// ---- the gateway page --------------------------------------------------------------------------

/** One function on the gateway page. */
export interface FunctionCard {
  name: string;
  prefix: string;
  replicas: number;
  description?: string;
  /** Its OpenAPI document (server = its prefix), when its model is loaded. */
  document?: Json;
  /** Its custom routes, shown when there is no document. */
  routes?: readonly CustomRoute[];
  /** Its live figures when the page is rendered (embedded mode); nginx's static page has none. */
  stats?: FunctionStats;
  /** It scales (to zero): a request no replica takes goes to the activator, which may wake it. */
  scales?: boolean;
  /** It takes API keys: nginx has none to ask its figures with. */
  keyed?: boolean;
  /** Its versions and their declared shares, when it has several. */
  versions?: readonly { version: string; traffic: number; shadow?: number }[];
}

/** The live view's chart of a function: empty until the page script has figures to draw. */
function chartSvg(name: string): string {
  return `<svg data-chart="${escapeHtml(name)}" viewBox="0 0 160 32" width="160" height="32" role="img" aria-label="no figures yet"><title>no figures yet</title>`
    + '<polyline data-series="rps" points="" fill="none" class="series-rps"/><polyline data-series="p99" points="" fill="none" class="series-p99"/></svg>';
}

/**
 * The state of a function on a page nginx serves: nginx fills it in as it sends the page (SSI),
 * from the function's own /stats (the activator answers for one asleep), so the first paint shows
 * it without the script: 'unavailable' when no replica answers, as the script would say.
 */
const ssiVar = (card: FunctionCard) => `modelfn_state_${card.name.replace(/-/g, '_')}`;
const ssiShareVar = (card: FunctionCard, version: string) => `modelfn_share_${card.name.replace(/-/g, '_')}_${version}`;
// Apart from ssiVar's names: the function 'a-1' has modelfn_state_a_1.
const ssiVersionStateVar = (card: FunctionCard, version: string) => `modelfn_vstate_${card.name.replace(/-/g, '_')}_${version}`;
function ssiStateLookup(card: FunctionCard): string {
  const stats = `modelfn_stats_${card.name.replace(/-/g, '_')}`;
  // Each version's entry begins {"version":"<N>","traffic":<percent>[,"shadow":<percent>],"state":"<state>":
  // the split in force, as nginx tells the function, and the version's state.
  const entry = (version: string) => `version.:.${version}.,.traffic.:`;
  const shares = (card.versions ?? []).map(({ version }) => `<!--# if expr="$${stats} = /${entry(version)}([0-9.]+)/" --><!--# set var="${ssiShareVar(card, version)}" value="$1%" --><!--# endif -->`
    + `<!--# if expr="$${stats} = /${entry(version)}[0-9.]+,.shadow.:([0-9.]+)/" --><!--# set var="${ssiShareVar(card, version)}" value="shadow $1%" --><!--# endif -->`
    + `<!--# if expr="$${stats} = /${entry(version)}[0-9.]+,(.shadow.:[0-9.]+,)?.state.:.([a-z]+)/" --><!--# set var="${ssiVersionStateVar(card, version)}" value="$2" --><!--# endif -->`).join('');
  // /stats begins {"name":...,"state":"<state>"; anything else (an error, nothing) means no replica answered.
  return `<!--# include virtual="${card.prefix}/stats" set="${stats}" -->`
    + `<!--# if expr="$${stats} = /state.:.([a-z]+)/" --><!--# set var="${ssiVar(card)}" value="$1" -->`
    + `<!--# else --><!--# set var="${ssiVar(card)}" value="unavailable" --><!--# endif -->${shares}`;
}
const ssiState = (card: FunctionCard) => `<!--# echo var="${ssiVar(card)}" default="…" encoding="entity" -->`;
const ssiShare = (card: FunctionCard, version: string) => `<!--# echo var="${ssiShareVar(card, version)}" default="…" encoding="entity" -->`;
const ssiVersionState = (card: FunctionCard, version: string) => `<!--# echo var="${ssiVersionStateVar(card, version)}" default="…" encoding="entity" -->`;

/**
 * Whether nginx looks the state up as it sends the page. Not for a function that scales (its
 * unanswered requests go to the activator, and opening a page must never wake a function) nor one
 * that takes API keys (nginx has none): their state comes with the script's first refresh.
 */
const looksUp = (card: FunctionCard, ssi: boolean) => ssi && !card.stats && card.document !== undefined && !card.scales && !card.keyed;

/** A function's state as the page is served: its live figures, nginx's lookup (`ssi`), or not known yet. */
function stateText(card: FunctionCard, ssi: boolean, unknown: string): string {
  if (card.stats) return escapeHtml(card.stats.state);
  return looksUp(card, ssi) ? ssiState(card) : escapeHtml(unknown);
}

const n = (v: number | null | undefined, unit = '') => (v === null || v === undefined ? '–' : `${v}${unit}`);

/** A live view row's figures as served: replicas, requests/s, p50, p99, batch size, errors/s (dashes without figures). */
function figureCells(s: Omit<FunctionStats, 'name'> | undefined): string {
  return `<td data-field="replicas">${s ? replicasText(s.state, s.readyReplicas, s.replicas) : '–'}</td><td data-field="rps">${n(s?.requestsPerSecond)}</td><td data-field="p50">${n(s?.latencyMs.p50, ' ms')}</td>
<td data-field="p99">${n(s?.latencyMs.p99, ' ms')}</td><td data-field="batch">${n(s?.batchSize)}</td><td data-field="errors">${n(s?.errorsPerSecond)}</td>`;
}

/**
 * A version's share as the page is served: from its live figures, nginx's lookup (the split
 * nginx runs, which the page built with the image cannot know), or the declared one.
 */
function shareOf(card: FunctionCard, ssi: boolean): (version: string) => string | undefined {
  return (version) => {
    const live = card.stats?.versions?.find((v) => v.version === version);
    if (live) return escapeHtml(shareText(live.traffic, live.shadow));
    return looksUp(card, ssi) ? ssiShare(card, version) : ssi ? '…' : undefined;
  };
}

/** The live view's rows of a function's versions, under its own row (none for a function with one version). */
function versionRows(card: FunctionCard, ssi: boolean): string {
  const share = shareOf(card, ssi);
  return (card.versions ?? []).map(({ version, traffic, shadow }) => {
    const s = card.stats?.versions?.find((v) => v.version === version);
    const state = s ? escapeHtml(s.state) : looksUp(card, ssi) ? ssiVersionState(card, version) : '…';
    return `<tr data-live-version="${escapeHtml(card.name)}" data-version="${escapeHtml(version)}" class="version${s && s.requestsPerSecond > 0 ? ' busy' : ''}">
<td>version ${escapeHtml(version)} <span data-field="share" class="share">${share(version) ?? escapeHtml(shareText(traffic, shadow))}</span></td><td><span data-field="state" class="state state-${state}">${state}</span></td>
${figureCells(s)}
<td></td><td data-field="reason" class="reason">${escapeHtml(s?.reason ?? '')}</td></tr>`;
  }).join('\n');
}

function liveRow(card: FunctionCard, ssi: boolean): string {
  const s = card.stats;
  const state = stateText(card, ssi, card.document ? '…' : 'failed');
  return `${looksUp(card, ssi) ? ssiStateLookup(card) : ''}<tr data-live="${escapeHtml(card.name)}" data-prefix="${escapeHtml(card.prefix)}" data-replicas="${card.replicas}"${s && s.requestsPerSecond > 0 ? ' class="busy"' : ''}>
<td><a href="#fn-${escapeHtml(card.name)}">${escapeHtml(card.name)}</a></td><td><span data-field="state" class="state state-${state}">${state}</span></td>
${figureCells(s)}
<td class="chart">${chartSvg(card.name)}</td><td data-field="reason" class="reason">${escapeHtml(s?.reason ?? '')}</td></tr>${card.versions ? `\n${versionRows(card, ssi)}` : ''}`;
}

function gatewayCard(card: FunctionCard, ssi: boolean): string {
  const state = stateText(card, ssi, card.document ? '…' : 'failed');
  const header = `<header><h2>${escapeHtml(card.name)}</h2><code>${escapeHtml(card.prefix)}/</code><span class="state state-${state}">${state}</span>
<span class="muted">${card.replicas} ${card.replicas === 1 ? 'replica' : 'replicas'} declared</span><a href="${escapeHtml(card.prefix)}/docs">docs</a><a href="${escapeHtml(card.prefix)}/openapi.json">openapi.json</a></header>`;
  const open = `<section class="card" id="fn-${escapeHtml(card.name)}" data-function="${escapeHtml(card.name)}" data-state="${state}">`;
  const doc = card.document;
  if (!doc) {
    const reason = card.stats?.reason ?? 'not loaded';
    return `${open}\n${header}\n${failureHelp(card, reason, card.routes ?? [], card.prefix)}\n</section>`;
  }
  // The routes worth trying here: those that take a body, the function's own first.
  const ops = operations(doc).filter((o) => o.body.kind !== 'none' && !o.url.includes('{version}'));
  let preferred = ops.findIndex((o) => o.tag === 'function');
  if (preferred < 0) preferred = Math.max(0, ops.findIndex((o) => o.id === 'predict'));
  const options = ops.map((o, i) => `<option value="${i}"${i === preferred ? ' selected' : ''}>${o.method} ${escapeHtml(o.url)} · ${escapeHtml(o.summary)}</option>`).join('');
  return `${open}
${header}
<p>${escapeHtml(doc.info.description)}</p>
${versionList(doc['x-modelfn'] ?? {}, { share: shareOf(card, ssi) })}${tensorList(doc['x-modelfn'] ?? {})}
<label><span class="muted">try a route</span><select aria-label="route" data-routes>${options}</select></label>
${ops.map((o, i) => tryForm(o, i !== preferred)).join('\n')}
</section>`;
}

/**
 * The gateway's root page for browsers: the live view of every function, then a card per
 * function with a form to try it.
 *
 * @example gateway.get('/', async (c) => c.html(gatewayPage(await cards())));
 */
export function gatewayPage(cards: readonly FunctionCard[], version: string, options: { ssi?: boolean } = {}): string {
  const ssi = options.ssi ?? false;
  return shell('modelfn', 'gateway', `<h1>modelfn</h1>
<p class="muted">${cards.length} functions · version ${escapeHtml(version)} · JSON clients get this list at GET / as JSON</p>
<table class="live" aria-label="live view">
<thead><tr><th>function</th><th>state</th><th>replicas</th><th>requests/s</th><th>median</th><th>p99</th><th>batch</th><th>errors/s</th><th>last 15 min: <span class="series-rps">requests/s</span>, <span class="series-p99">p99</span></th><th></th></tr></thead>
<tbody>
${cards.map((card) => liveRow(card, ssi)).join('\n')}
</tbody>
</table>
<p class="muted">Over the last minute, from each function's own metrics (<code>GET /&lt;prefix&gt;/stats</code>); refreshed every 2 s. The chart keeps what this page has seen, up to 15 minutes. <span data-live-updated></span></p>
${cards.map((card) => gatewayCard(card, ssi)).join('\n')}`);
}
