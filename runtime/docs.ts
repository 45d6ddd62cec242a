/**
 * `GET /openapi.json` and `GET /docs`: every function documents itself, its own routes
 * included, with its model's datatypes and shapes.
 */
import type { Hono } from 'hono';
import type { RouterRoute } from 'hono/types';
import type { FunctionHost } from './host.ts';
import { openApiDocument, type CustomRoute } from './openapi.ts';
import { docsPage } from './ui.ts';

const PREFIX = /^(\/[A-Za-z0-9._~-]+)+$/;

/**
 * Adds the document and the docs page. `custom` are the routes the function declared itself.
 * Behind the gateway the document's server is the function's prefix (X-Forwarded-Prefix).
 *
 * @example docsRoutes(app, host, app.routes.slice(builtIn));
 */
export function docsRoutes(app: Hono, host: FunctionHost, custom: readonly RouterRoute[]): void {
  const routes: CustomRoute[] = custom
    // Middleware (app.use) and app.all routes are not operations.
    .filter((r) => r.method !== 'ALL')
    .map((r) => ({ method: r.method.toUpperCase(), path: r.path }));
  app.get('/openapi.json', (c) => {
    const prefix = c.req.header('x-forwarded-prefix');
    // host.model answers 503 while the model is loading or failed: the document needs its metadata.
    return c.json(openApiDocument(host.fn, host.model, routes, prefix && PREFIX.test(prefix) ? prefix : '/'));
  });
  app.get('/docs', (c) => c.html(docsPage(host.fn.name)));
}
