/**
 * The activator's HTTP side (Hono): the gateway hands it the requests of a function with no
 * answering replica, naming the function in `X-Modelfn-Function` (a header nginx sets itself,
 * whatever the client sent); it holds each one until the function is awake and passes it on,
 * body streamed, or answers 503 JSON with Retry-After. The function's name is never taken from
 * the request's path: the path goes to that function's replica as the gateway sent it.
 */
import { randomUUID } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { Hono } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import type { Logger } from '../core/log.ts';
import { emptyWindow, summarize } from '../core/stats.ts';
import { Activator, UnavailableError } from './activator.ts';
import type { ActivatorMetrics } from './metrics.ts';

/** The header in which the gateway names the function a request is for. */
export const FUNCTION_HEADER = 'x-modelfn-function';

/** Headers that belong to one connection, not to the request or answer passed on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate', FUNCTION_HEADER]);

function passOn(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}

/** Connection-level failures: the replica went away (asleep, stopped), so another try may wake it. */
function connectFailed(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT'].includes(code);
}

interface Forwarded {
  res?: IncomingMessage;
  error?: Error;
  /** Whether any of the request's body went out before the failure (then it cannot be sent again). */
  bodySent: boolean;
}

/**
 * Sends the request to a replica: the body is piped once the connection is up, so a refused
 * connection has taken none of it and the request can go to another replica.
 */
function forward(base: string, path: string, incoming: IncomingMessage, hasBody: boolean, timeoutMs: number): Promise<Forwarded> {
  return new Promise((done) => {
    const url = new URL(base);
    let bodySent = false;
    const req = httpRequest({
      host: url.hostname, port: url.port, method: incoming.method, path, headers: passOn(incoming.headers),
      agent: false, signal: AbortSignal.timeout(timeoutMs),
    });
    req.once('response', (res) => done({ res, bodySent }));
    req.once('error', (error) => done({ error, bodySent }));
    req.once('socket', (socket) => {
      const send = () => {
        if (!hasBody) return void req.end();
        bodySent = true;
        incoming.pipe(req);
      };
      if (socket.connecting) socket.once('connect', send);
      else send();
    });
    // The gateway gave up on this request: so does the replica's connection.
    incoming.once('close', () => {
      if (!incoming.complete) req.destroy();
    });
  });
}

export interface ActivatorAppOptions {
  metrics: ActivatorMetrics;
  /** Where refusals and failures are logged, with the request's id and what the client is not told. */
  logger: Logger;
  /** Which peers may use it (the gateway); every one when absent. Loopback always may (the health check). */
  allow?: (address: string | undefined) => Promise<boolean>;
}

const NULL_BODY = new Set([204, 205, 304]);

/**
 * @example serve({ fetch: activatorApp(activator, { metrics, logger }).fetch, port: 8080 });
 */
export function activatorApp(activator: Activator, options: ActivatorAppOptions) {
  const { metrics, logger } = options;
  const app = new Hono<{ Bindings: HttpBindings; Variables: { activatorRequestId: string } }>();
  app.use(async function requestId(c, next) {
    // The gateway's id (the client's X-Request-Id, or nginx's own); one of ours without it.
    const id = c.req.header('x-request-id')?.slice(0, 200) || randomUUID();
    c.set('activatorRequestId', id);
    await next();
    c.header('X-Request-Id', id);
  });
  if (options.allow) {
    const allow = options.allow;
    app.use(async function onlyTheGateway(c, next) {
      const address = c.env?.incoming?.socket?.remoteAddress;
      if (address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1' || (await allow(address))) return next();
      return c.json({ error: 'the activator answers the gateway only' }, 403);
    });
  }
  app.use(async function passedOn(c, next) {
    const name = c.req.header(FUNCTION_HEADER);
    if (name === undefined) return next();
    const requestId = c.get('activatorRequestId');
    const spec = activator.spec(name);
    if (!spec) return c.json({ error: `unknown function '${name.slice(0, 60)}': it does not scale here` }, 404);
    const incoming = c.env?.incoming;
    // The path exactly as the gateway sent it (the function's prefix already stripped there).
    const path = incoming?.url ?? new URL(c.req.url).pathname;
    if (!incoming || !path.startsWith('/')) return c.json({ error: 'expected a request path starting with /' }, 400);
    const method = c.req.method;
    // The gateway page polls every function's /stats: that alone never wakes one (an awake one,
    // reached here while the gateway's DNS answer is older than its wake, answers itself).
    if (method === 'GET' && path.split('?')[0] === '/stats' && !activator.awake(name)) {
      return c.json(summarize(name, activator.waking(name) ? 'waking' : 'asleep', emptyWindow(), 0, 0));
    }
    const declared = c.req.header('content-length');
    const chunked = c.req.header('transfer-encoding') !== undefined;
    const length = declared === undefined ? (chunked ? spec.bodySize : 0) : Number(declared);
    if (!Number.isSafeInteger(length) || length < 0) return c.json({ error: 'Content-Length is not a byte count' }, 400);
    if (length > spec.bodySize) return c.json({ error: `request body is larger than the limit of ${spec.bodySize} bytes for '${name}'` }, 413);
    const unavailable = (err: UnavailableError) => {
      metrics.requests.inc({ function: name, status: '503' });
      logger.log('warn', 'unavailable', { fn: name, request_id: requestId, error: err.detail ?? err.message });
      return c.json({ error: err.message }, 503, { 'Retry-After': String(Math.max(1, err.retryAfterSeconds)) });
    };
    let release: () => void;
    try {
      release = activator.admit(name, length);
    } catch (err) {
      if (err instanceof UnavailableError) return unavailable(err);
      throw err;
    }
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        let base: string;
        try {
          base = await activator.target(name);
        } catch (err) {
          if (err instanceof UnavailableError) return unavailable(err);
          throw err;
        }
        const { res, error, bodySent } = await forward(base, path, incoming, length > 0 || chunked, spec.timeoutMs + 1000);
        if (res) {
          activator.answered(name);
          metrics.requests.inc({ function: name, status: String(res.statusCode) });
          const status = res.statusCode ?? 502;
          const body = method === 'HEAD' || NULL_BODY.has(status) ? (res.resume(), null) : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
          const headers = new Headers();
          for (const [key, value] of Object.entries(passOn(res.headers))) {
            for (const v of Array.isArray(value) ? value : [value]) headers.append(key, v);
          }
          return new Response(body, { status, headers });
        }
        if (!connectFailed(error) || bodySent) {
          const timedOut = error?.name === 'TimeoutError' || error?.name === 'AbortError';
          logger.log('warn', timedOut ? 'no answer in time' : 'replica failed', { fn: name, request_id: requestId, error: error?.message });
          if (timedOut) {
            metrics.requests.inc({ function: name, status: '504' });
            return c.json({ error: `the function '${name}' did not answer in time` }, 504);
          }
          return unavailable(new UnavailableError(`function '${name}' lost the connection while receiving the request; retry it`, 1, error?.message));
        }
        activator.unreachable(name, base);
      }
      return unavailable(new UnavailableError(`function '${name}' is unavailable: its replicas keep refusing connections`, 1));
    } finally {
      release();
    }
  });
  app.get('/v2/health/live', (c) => c.json({ live: true }));
  app.get('/v2/health/ready', (c) => c.json({ ready: true }));
  app.get('/metrics', async (c) => c.text(await metrics.registry.metrics(), 200, { 'Content-Type': metrics.registry.contentType }));
  app.notFound((c) => c.json({ error: `no activator route ${c.req.method} ${c.req.path.slice(0, 100)}` }, 404));
  app.onError((err, c) => {
    logger.log('error', 'activator error', { request_id: c.get('activatorRequestId'), error: err.message, stack: err.stack });
    return c.json({ error: 'internal error in the activator' }, 500);
  });
  return app;
}
