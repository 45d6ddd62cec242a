/**
 * The one table of what a request to a function is, read by everything that treats requests
 * differently: activity tracking (what keeps a scaled function awake), the live view's figures,
 * API keys, and the access log.
 *
 * | class | paths (relative to the function) | keeps it awake | counted in /stats | API key | logged at |
 * | --- | --- | --- | --- | --- | --- |
 * | `probe` | `/v2/health/live`, `/v2/health/ready`, `/v2/models/<m>[/versions/<v>]/ready` | no | no | never | debug |
 * | `observation` | `/stats`, `/metrics`, `/`, `/docs`, `/openapi.json`, `/examples/*`, `GET /v2`, `GET /v2/models/<m>[/versions/<v>]` | no | no | yes | debug |
 * | `inference` | `POST /v2/models/<m>[/versions/<v>]/infer`, `POST /predict` | yes | yes | yes | info |
 * | `function` | everything else (the function's own routes) | yes | yes | yes | info |
 *
 * A request refused before any work (401, 403, 404, 405, 429) keeps nothing awake either.
 */
import type { Context } from 'hono';

export type RouteClass = 'probe' | 'observation' | 'inference' | 'function';

declare module 'hono' {
  interface ContextVariableMap {
    /** The request's class (routeClassOf), worked out once and read by each middleware. */
    routeClass: RouteClass;
  }
}

const PROBES = new Set(['/v2/health/live', '/v2/health/ready']);
const OBSERVATIONS = new Set(['/', '/stats', '/metrics', '/docs', '/openapi.json', '/v2']);
const MODEL_READY = /^\/v2\/models\/[^/]+(?:\/versions\/[^/]+)?\/ready$/;
const MODEL_METADATA = /^\/v2\/models\/[^/]+(?:\/versions\/[^/]+)?$/;
const INFER = /^\/v2\/models\/[^/]+(?:\/versions\/[^/]+)?\/infer$/;

/**
 * The class of a request, by method and path as the function sees it (its prefix removed). Route
 * patterns (`/examples/:file`) classify as the paths they match.
 *
 * @example routeClass('GET', '/stats') // 'observation'
 */
export function routeClass(method: string, path: string): RouteClass {
  if (PROBES.has(path) || MODEL_READY.test(path)) return 'probe';
  if (method === 'POST' && (path === '/predict' || INFER.test(path))) return 'inference';
  if (method === 'GET' || method === 'HEAD') {
    if (OBSERVATIONS.has(path) || path.startsWith('/examples/') || MODEL_METADATA.test(path)) return 'observation';
  }
  return 'function';
}

/**
 * The class of the request in hand, worked out by the first middleware that asks and kept on
 * the context for the others (activity, API keys, the access log), instead of a set lookup and
 * regular expressions each.
 *
 * @example if (routeClassOf(c) === 'probe') return next();
 */
export function routeClassOf(c: Context): RouteClass {
  let cls = c.get('routeClass');
  if (cls === undefined) c.set('routeClass', (cls = routeClass(c.req.method, c.req.path)));
  return cls;
}

/** Statuses of requests refused before any work: they keep nothing awake. */
const REFUSED = new Set([401, 403, 404, 405, 429]);

/** Whether a request with this class and answer is traffic: it keeps a scaled function awake and counts in its figures. */
export const isTraffic = (cls: RouteClass, status?: number): boolean =>
  (cls === 'inference' || cls === 'function') && (status === undefined || !REFUSED.has(status));
