/**
 * The Hono app of one function: the protocol routes, `/predict`, the function's own routes,
 * metrics, logs, limits and JSON errors.
 */
import { Hono } from 'hono';
import { getPath } from 'hono/utils/url';
import { methodNotAllowed } from 'hono/method-not-allowed';
import { trackActivity, type Activity } from './activity.ts';
import { loadApiKeys, requireApiKey } from './auth.ts';
import { limitBody } from './body-limit.ts';
import type { RuntimeConfig } from '../core/config.ts';
import { DeclarationError } from '../function/define.ts';
import { docsRoutes, ownRoutes } from '../pages/docs.ts';
import type { CustomRoute } from '../pages/openapi.ts';
import { statsRoute } from './stats.ts';
import { errorResponse, handleError, handleNotFound } from './errors.ts';
import type { FunctionHost } from '../function/host.ts';
import { accessLog, createLogger, type Logger } from '../core/log.ts';
import { createMetrics, type Metrics } from '../core/metrics.ts';
import { predictRoute } from './predict.ts';
import { modelRoutes, serverRoutes } from './protocol.ts';
import { decodeRequestBody } from './request-encoding.ts';
import { deadline } from './deadline.ts';
import { requestId } from './request-id.ts';
import { compressResponse } from './response-compression.ts';
import { VERSION } from '../core/version.ts';
import { VERSION_HEADER } from '../function/traffic.ts';

export interface FunctionAppOptions {
  config: Pick<RuntimeConfig, 'maxElements' | 'accessLog' | 'logLevel'> & Partial<Pick<RuntimeConfig, 'peers'>>;
  logger?: Logger;
  metrics?: Metrics;
  /** Counts the traffic, for the activator (scale to zero). */
  activity?: Activity;
  /**
   * Serve paths under this prefix as if it were absent (embedded mode): the gateway hands the
   * request over as it came, instead of rebuilding it with a new URL.
   */
  stripPrefix?: string;
}

/**
 * Builds the app serving one function at `/`. The model may still be loading: routes that
 * need it answer 503 until it is ready.
 *
 * @example
 * const { app } = createFunctionApp(host, { config: readConfig() });
 * await app.request('/v2/health/ready');
 */
export interface FunctionApp {
  app: Hono;
  metrics: Metrics;
  logger: Logger;
  /** The routes the function added itself. */
  customRoutes: CustomRoute[];
  /** Stops the app's timers (the live view's snapshots). */
  close(): void;
}

export function createFunctionApp(host: FunctionHost, options: FunctionAppOptions): FunctionApp {
  const { config } = options;
  const fn = host.fn;
  const logger = options.logger ?? createLogger(config.logLevel);
  const metrics = options.metrics ?? createMetrics();
  const strip = options.stripPrefix;
  const app = new Hono({
    getPath: (req) => {
      let path = getPath(req);
      if (strip && path.startsWith(`${strip}/`)) path = path.slice(strip.length);
      // `/predict/` is `/predict`: a trailing slash never makes a route unknown.
      return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
    },
  });

  // Every answer names the version that gave it, custom routes and errors included: with a split
  // in force, a client (and a test) can tell which model answered.
  app.use(requestId({ [VERSION_HEADER]: fn.version }));
  if (config.accessLog) app.use(accessLog(logger, { fn: fn.name }));
  if (options.activity) app.use(trackActivity(options.activity));
  app.use(...metrics.middleware);
  app.use(compressResponse());
  app.use(methodNotAllowed({
    app,
    onMethodNotAllowed: (c, methods) => errorResponse(c, 405, `${c.req.method} is not allowed on ${c.req.path}; use ${methods.join(', ')}`, { Allow: methods.join(', ') }),
  }));
  if (fn.auth) {
    let keys: string[];
    try {
      keys = loadApiKeys(fn.name, fn.auth.apiKeys);
    } catch (err) {
      throw new DeclarationError(fn.declarationFile ?? fn.dir, (err as Error).message);
    }
    app.use(requireApiKey(keys));
  }
  app.use(limitBody({
    maxSize: fn.limits.bodySize,
    onError: (c) => errorResponse(c, 413, `request body is larger than the limit of ${fn.limits.bodySize} bytes for '${fn.name}'`),
  }));
  // The request's deadline and signal: work for a request that timed out or whose client left is dropped.
  app.use(deadline({
    timeoutMs: fn.limits.timeoutMs,
    message: `request to '${fn.name}' timed out after ${fn.limits.timeoutMs} ms; its work was stopped`,
    onTimeout: (c, message) => errorResponse(c, 504, message),
  }));
  // Every route below, the function's own included, reads the body decoded.
  app.use(decodeRequestBody({
    maxSize: fn.limits.bodySize,
    onTooLarge: (c) => errorResponse(c, 413, `request body is larger than the limit of ${fn.limits.bodySize} bytes for '${fn.name}' once decompressed`),
  }));
  app.onError(handleError((err, c) => logger.log('error', 'unhandled error', {
    fn: fn.name,
    request_id: c.get('requestId'),
    error: err instanceof Error ? err.stack : String(err),
  })));
  app.notFound(handleNotFound);

  const protocol = { maxElements: config.maxElements, serverName: 'modelfn', serverVersion: VERSION };
  serverRoutes(app, () => (host.isReady ? undefined : host.notReadyReason()), protocol);
  modelRoutes(app, host, protocol);
  app.get('/metrics', metrics.handler);
  // The function's own routes come before the default /predict, so a function may replace it.
  const builtIn = app.routes.length;
  fn.routes?.(app, host);
  const customRoutes = ownRoutes(app.routes.slice(builtIn));
  const stats = statsRoute(app, host, metrics, { peers: config.peers });
  predictRoute(app, host, config.maxElements);
  docsRoutes(app, host, customRoutes);
  return { app, metrics, logger, customRoutes, close: stats.stop };
}
