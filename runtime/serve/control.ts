/**
 * The control server of a function that scales to zero: a second port, reachable only by the
 * activator, through which the activator reads the function's traffic and puts it to sleep or
 * wakes it. Asleep, the function's own port refuses connections, so the gateway hands every
 * request to the activator at once instead of waiting on a frozen process.
 *
 *   GET  /state                  traffic, listening, start-up phases
 *   POST /sleep?idle_ms=N        stop listening and drain, unless a request came within N ms (409)
 *   POST /wake                   listen again
 */
import { lookup } from 'node:dns/promises';
import type { Server } from 'node:http';
import { serve, type HttpBindings } from '@hono/node-server';
import { Hono } from 'hono';
import { idleMs } from '../http/activity.ts';
import type { RuntimeConfig } from '../core/config.ts';
import type { Logger } from '../core/log.ts';
import type { RunningFunction } from './server.ts';

/** What the activator reads from `GET /state`. */
export interface FunctionState {
  ready: boolean;
  listening: boolean;
  in_flight: number;
  requests: number;
  idle_ms: number;
  startup: { process_ms: number; model_load_ms: number; warm_up_ms: number };
  wakes: number;
}

export type ControlledFunction = Pick<RunningFunction, 'host' | 'activity' | 'startup' | 'listening' | 'stopListening' | 'listen' | 'metrics'>;

/** Whether a peer address may use the control server: its address is one of `name`'s (cached 5 s). */
export function addressesOf(name: string): (address: string | undefined) => Promise<boolean> {
  let cached: { at: number; addresses: Set<string> } | undefined;
  return async (address) => {
    if (!address) return false;
    const peer = address.replace(/^::ffff:/, '');
    if (!cached || Date.now() - cached.at > 5000 || !cached.addresses.has(peer)) {
      const found = await lookup(name, { all: true }).catch(() => []);
      cached = { at: Date.now(), addresses: new Set(found.map((a) => a.address)) };
    }
    return cached.addresses.has(peer);
  };
}

/**
 * The control app. `allow` decides which peers may use it (every one when absent).
 *
 * @example serve({ fetch: controlApp(running, { drainTimeoutMs: 30_000 }).fetch, port: 9090 });
 */
export function controlApp(running: ControlledFunction, options: { drainTimeoutMs: number; allow?: (address: string | undefined) => Promise<boolean>; logger?: Logger }) {
  const app = new Hono<{ Bindings: HttpBindings }>();
  let wakes = 0;
  // Sleeps and wakes one at a time, in the order they arrive.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work, work);
    queue = next.catch(() => {});
    return next;
  };
  if (options.allow) {
    const allow = options.allow;
    app.use(async function onlyTheActivator(c, next) {
      if (!(await allow(c.env?.incoming?.socket?.remoteAddress))) return c.json({ error: 'the control server answers the activator only' }, 403);
      return next();
    });
  }
  const state = (): FunctionState => ({
    ready: running.host.isReady,
    listening: running.listening,
    in_flight: running.activity.inFlight,
    requests: running.activity.total,
    idle_ms: Math.round(idleMs(running.activity)),
    startup: { process_ms: running.startup.processMs, model_load_ms: running.startup.modelLoadMs, warm_up_ms: running.startup.warmUpMs },
    wakes,
  });
  app.get('/state', (c) => c.json(state()));
  app.post('/sleep', async (c) => {
    const wanted = Number(c.req.query('idle_ms') ?? 0);
    if (!Number.isFinite(wanted) || wanted < 0) return c.json({ error: 'idle_ms must be a number of milliseconds' }, 400);
    return serial(async () => {
      // Checked and acted on without an await in between: a request that arrives later finds
      // the port closed and goes to the activator, one that came earlier keeps the function awake.
      if (!running.listening) return c.json({ asleep: true, drained: true, ...state() });
      if (running.activity.inFlight > 0 || idleMs(running.activity) < wanted) return c.json({ error: 'busy', ...state() }, 409);
      const { drained } = await running.stopListening(options.drainTimeoutMs);
      options.logger?.log('info', 'asleep', { fn: running.host.fn.name, drained });
      return c.json({ asleep: true, drained, ...state() });
    });
  });
  app.post('/wake', (c) => serial(async () => {
    const started = performance.now();
    if (!running.listening) {
      await running.listen();
      wakes++;
      running.metrics.wakes.inc();
      running.metrics.wakeSeconds.set((performance.now() - started) / 1000);
      options.logger?.log('info', 'awake', { fn: running.host.fn.name, ms: Math.round((performance.now() - started) * 10) / 10 });
    }
    return c.json({ awake: true, ms: performance.now() - started, ...state() });
  }));
  app.notFound((c) => c.json({ error: `no control route ${c.req.method} ${c.req.path}` }, 404));
  return app;
}

/** Starts the control server when `MODELFN_CONTROL_PORT` is set; resolves to it (or undefined). */
export async function startControl(running: ControlledFunction, config: Pick<RuntimeConfig, 'controlPort' | 'controlFrom' | 'host' | 'shutdownTimeoutMs'>, logger: Logger): Promise<Server | undefined> {
  if (!config.controlPort) return undefined;
  const app = controlApp(running, {
    drainTimeoutMs: config.shutdownTimeoutMs,
    allow: config.controlFrom ? addressesOf(config.controlFrom) : undefined,
    logger,
  });
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port: config.controlPort, hostname: config.host }, () => {
      logger.log('info', 'control server listening', { fn: running.host.fn.name, port: config.controlPort, from: config.controlFrom || 'any' });
      resolve(server as Server);
    }) as Server;
    server.once('error', reject);
  });
}
