/**
 * `GET /openapi.json`, `GET /docs` and `GET /`: every function documents itself, its own routes
 * included, with its model's datatypes and shapes; `/examples/<file>` serves the example files
 * its routes declare.
 */
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Context, Hono } from 'hono';
import type { RouterRoute } from 'hono/types';
import type { FunctionHost } from '../function/host.ts';
import { functionEntry } from './entry.ts';
import { modelFacts } from './facts.ts';
import { openApiDocument, type CustomRoute } from './openapi.ts';
import { docsPage, failedDocsPage, wantsHtml } from './ui.ts';

const PREFIX = /^(\/[A-Za-z0-9._~-]+)+$/;

/** The routes a function added itself, as operations (middleware and app.all routes are not). */
export function ownRoutes(routes: readonly RouterRoute[]): CustomRoute[] {
  return routes.filter((r) => r.method !== 'ALL').map((r) => ({ method: r.method.toUpperCase(), path: r.path }));
}

/**
 * Where the function is mounted: nginx says so in X-Forwarded-Prefix; in embedded mode the app
 * strips its prefix itself, which shows as the difference between the URL and the path.
 */
export function mountedPrefix(c: Context): string {
  const urlPath = new URL(c.req.url).pathname.replace(/(.)\/$/, '$1');
  const path = c.req.path === '/' ? '' : c.req.path;
  const prefix = c.req.header('x-forwarded-prefix') ?? (urlPath !== c.req.path && urlPath.endsWith(path) ? urlPath.slice(0, urlPath.length - path.length) : '');
  return PREFIX.test(prefix) ? prefix : '';
}

/**
 * Adds the document, the docs page, the function's root and its example files. `custom` are the
 * routes the function declared itself.
 *
 * @example docsRoutes(app, host, ownRoutes(app.routes.slice(builtIn)));
 */
export function docsRoutes(app: Hono, host: FunctionHost, custom: readonly CustomRoute[]): void {
  // host.model answers 503 while the model is loading or failed: the document needs its metadata.
  // The example answers are the warm-up's: a docs page runs nothing, so it counts as no work.
  const document = (prefix: string) => openApiDocument(host.fn, host.model, custom, prefix || '/', {
    answers: host.exampleAnswers,
    facts: modelFacts(host.fn.modelPath, { loadMs: host.model.loadMs, warmUpMs: host.warmUpMs }),
  });
  app.get('/openapi.json', (c) => c.json(document(mountedPrefix(c))));
  app.get('/docs', (c) => {
    const prefix = mountedPrefix(c);
    if (!host.isReady && host.state !== 'draining') return c.html(failedDocsPage(host.fn, host.notReadyReason(), custom, prefix), 503);
    return c.html(docsPage(document(prefix), { host: c.req.header('host') }));
  });
  // `/iris/` is where people land by trimming a URL: browsers go to the docs, clients get the entry of GET /.
  app.get('/', (c) => {
    const prefix = mountedPrefix(c);
    if (wantsHtml(c.req.header('accept'))) return c.redirect(`${prefix}/docs`, 302);
    const inputs = host.isReady ? host.model.inputs.length : undefined;
    // The same error as its entry at GET / (the reason it does not serve), with its state, and 503 like its other routes.
    const error = host.isReady ? undefined : host.notReadyReason();
    const entry = functionEntry({ ...host.fn, prefix: prefix || host.fn.prefix, inputs, ownRoutes: custom, error });
    return c.json({ ...entry, state: host.state }, host.isReady ? 200 : 503);
  });
  const examples = new Map(Object.values(host.fn.routeDocs).flatMap((d) => (d.exampleFile ? [[basename(d.exampleFile), { file: d.exampleFile, type: d.contentType ?? 'application/octet-stream' }] as const] : [])));
  if (examples.size) {
    app.get('/examples/:file', async (c) => {
      const example = examples.get(c.req.param('file'));
      if (!example) return c.json({ error: `no example file '${c.req.param('file')}'; there are: ${[...examples.keys()].join(', ')}` }, 404);
      return c.body(await readFile(join(host.fn.dir, example.file)), 200, { 'Content-Type': example.type, 'Cache-Control': 'max-age=300' });
    });
  }
}
