/**
 * The activator's HTTP side (Hono): the gateway hands it the requests of a function with no
 * answering replica at `/_activate/<function>/<original URI>`; it holds each one until the
 * function is awake and forwards it, body and all, or answers 503 JSON with Retry-After.
 */
import { Hono } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { emptyWindow, summarize } from '../core/stats.ts';
import { Activator, UnavailableError } from './activator.ts';
import type { ActivatorMetrics } from './metrics.ts';

/** Headers that belong to one connection, not to the request or answer passed on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'host', 'content-length']);

function passOn(headers: Headers, drop: readonly string[] = []): Headers {
  const out = new Headers();
  headers.forEach((value, name) => {
    if (!HOP_BY_HOP.has(name) && !drop.includes(name)) out.append(name, value);
  });
  return out;
}

/** Connection-level failures: the replica went away (asleep, stopped), so another try may wake it. */
function connectFailed(err: unknown): boolean {
  const code = ((err as { cause?: { code?: string } })?.cause?.code) ?? '';
  return ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT'].includes(code);
}

export interface ActivatorAppOptions {
  metrics: ActivatorMetrics;
  /** Which peers may use it (the gateway); every one when absent. Loopback always may (the health check). */
  allow?: (address: string | undefined) => Promise<boolean>;
}

/**
 * @example serve({ fetch: activatorApp(activator, { metrics }).fetch, port: 8080 });
 */
export function activatorApp(activator: Activator, options: ActivatorAppOptions) {
  const { metrics } = options;
  const app = new Hono<{ Bindings: HttpBindings }>();
  if (options.allow) {
    const allow = options.allow;
    app.use(async function onlyTheGateway(c, next) {
      const address = c.env?.incoming?.socket?.remoteAddress;
      if (address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1' || (await allow(address))) return next();
      return c.json({ error: 'the activator answers the gateway only' }, 403);
    });
  }
  app.get('/v2/health/live', (c) => c.json({ live: true }));
  app.get('/v2/health/ready', (c) => c.json({ ready: true }));
  app.get('/metrics', async (c) => c.text(await metrics.registry.metrics(), 200, { 'Content-Type': metrics.registry.contentType }));
  app.all('/_activate/:fn/*', async (c) => {
    const name = c.req.param('fn');
    const spec = activator.spec(name);
    if (!spec) return c.json({ error: `unknown function '${name.slice(0, 60)}': it does not scale here` }, 404);
    const url = new URL(c.req.url);
    let path = url.pathname.slice(`/_activate/${name}`.length) || '/';
    // The gateway strips a function's prefix; it tells which one in X-Forwarded-Prefix.
    const prefix = c.req.header('x-forwarded-prefix');
    if (prefix && path.startsWith(`${prefix}/`)) path = path.slice(prefix.length);
    // The gateway page polls every function's /stats: that alone never wakes one (an awake one,
    // reached here while the gateway's DNS answer is older than its wake, answers itself).
    if (c.req.method === 'GET' && path === '/stats' && !activator.awake(name)) {
      return c.json(summarize(name, activator.waking(name) ? 'waking' : 'asleep', emptyWindow(), 0, 0));
    }
    const tooLarge = () => c.json({ error: `request body is larger than the limit of ${spec.bodySize} bytes for '${name}'` }, 413);
    if (Number(c.req.header('content-length') ?? 0) > spec.bodySize) return tooLarge();
    const method = c.req.method;
    const body = method === 'GET' || method === 'HEAD' ? undefined : await c.req.arrayBuffer();
    if (body && body.byteLength > spec.bodySize) return tooLarge();
    const headers = passOn(c.req.raw.headers);
    for (let attempt = 0; attempt < 3; attempt++) {
      let base: string;
      try {
        base = await activator.target(name);
      } catch (err) {
        if (!(err instanceof UnavailableError)) throw err;
        metrics.requests.inc({ function: name, status: '503' });
        return c.json({ error: err.message }, 503, { 'Retry-After': String(Math.max(1, err.retryAfterSeconds)) });
      }
      try {
        const res = await fetch(`${base}${path}${url.search}`, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(spec.timeoutMs + 1000) });
        activator.answered(name);
        metrics.requests.inc({ function: name, status: String(res.status) });
        // fetch has already decoded a compressed body.
        return new Response(res.body, { status: res.status, headers: passOn(res.headers, ['content-encoding']) });
      } catch (err) {
        if (!connectFailed(err)) {
          metrics.requests.inc({ function: name, status: '504' });
          return c.json({ error: `the function '${name}' did not answer in time` }, 504);
        }
        activator.unreachable(name, base);
      }
    }
    metrics.requests.inc({ function: name, status: '503' });
    return c.json({ error: `function '${name}' is unavailable: its replicas keep refusing connections` }, 503, { 'Retry-After': '1' });
  });
  app.notFound((c) => c.json({ error: `no activator route ${c.req.method} ${c.req.path.slice(0, 100)}` }, 404));
  app.onError((err, c) => c.json({ error: `activator error: ${err.message.slice(0, 300)}` }, 500));
  return app;
}
