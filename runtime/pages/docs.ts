/**
 * `GET /openapi.json` and `GET /docs`: every function documents itself, its own routes
 * included, with its model's datatypes and shapes.
 */
import type { Hono } from 'hono';
import type { RouterRoute } from 'hono/types';
import type { FunctionHost } from '../function/host.ts';
import { openApiDocument, type CustomRoute } from './openapi.ts';
import { docsPage } from './ui.ts';

const PREFIX = /^(\/[A-Za-z0-9._~-]+)+$/;

/**
 * Adds the document and the docs page. `custom` are the routes the function declared itself.
 * Behind the gateway the document's server is the function's prefix.
 *
 * @example docsRoutes(app, host, app.routes.slice(builtIn));
 */
export function docsRoutes(app: Hono, host: FunctionHost, custom: readonly RouterRoute[]): void {
  const routes: CustomRoute[] = custom
    // Middleware (app.use) and app.all routes are not operations.
    .filter((r) => r.method !== 'ALL')
    .map((r) => ({ method: r.method.toUpperCase(), path: r.path }));
  app.get('/openapi.json', (c) => {
    // nginx says where the function is mounted in X-Forwarded-Prefix; in embedded mode the app
    // strips its prefix itself, which shows as the difference between the URL and the path.
    const urlPath = new URL(c.req.url).pathname;
    const prefix = c.req.header('x-forwarded-prefix') ?? (urlPath !== c.req.path && urlPath.endsWith(c.req.path) ? urlPath.slice(0, -c.req.path.length) : undefined);
    // host.model answers 503 while the model is loading or failed: the document needs its metadata.
    return c.json(openApiDocument(host.fn, host.model, routes, prefix && PREFIX.test(prefix) ? prefix : '/'));
  });
  app.get('/docs', (c) => c.html(docsPage(host.fn.name)));
}
