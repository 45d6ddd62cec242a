/**
 * Running one function as one server process: load the model, listen, drain on SIGTERM/SIGINT.
 * This is exactly what each container runs.
 */
import { STATUS_CODES, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { createActivity, type Activity } from '../http/activity.ts';
import { ConfigError, FUNCTION_KEEPALIVE_TIMEOUT_MS, sessionSettingsOf, type RuntimeConfig } from '../core/config.ts';
import { servedVersion } from '../function/version.ts';
import { createFunctionApp } from '../http/app.ts';
import type { ResolvedFunction } from '../function/define.ts';
import { FunctionHost } from '../function/host.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { createMetrics, modelMetricsOptions, type Metrics } from '../core/metrics.ts';
import { loadModel, type Model } from '../engine/model.ts';
import { shedWhenBehind } from './shed.ts';
import { warmUp } from './warmup.ts';
import { reportListening } from './workers.ts';
import type { Hono } from 'hono';

export interface RunningFunction {
  host: FunctionHost;
  server: Server;
  /** The address actually bound (port 0 picks a free one). */
  port: number;
  url: string;
  metrics: Metrics;
  /** The function's traffic, for the activator. */
  activity: Activity;
  /** Milliseconds of each start-up phase: process start to model load, model load, warm-up. */
  startup: { processMs: number; modelLoadMs: number; warmUpMs: number };
  /** Whether the server accepts connections (false while asleep). */
  readonly listening: boolean;
  /**
   * Stops accepting connections (they are refused, so the gateway hands new requests to the
   * activator) and resolves once every connection has closed, idle ones closed as they go idle.
   */
  stopListening(timeoutMs: number): Promise<{ drained: boolean }>;
  /** Accepts connections again on the same port. */
  listen(): Promise<void>;
  /** Readiness turns false, no new connections, in-flight requests finish (within the shutdown timeout). */
  shutdown(): Promise<{ drained: boolean }>;
}

/**
 * Loads the function's model, then listens. Throws ModelLoadError when the model cannot load.
 *
 * @example const running = await startFunction(fn, readConfig()); await running.shutdown();
 */
export interface PreparedFunction {
  host: FunctionHost;
  app: Hono;
  metrics: Metrics;
  model: Model;
  activity: Activity;
}

/**
 * Loads a function's model with the runtime's settings, wires it to the function's metrics and
 * marks the host ready. Throws ModelLoadError when the model cannot load.
 */
export async function loadFunctionModel(host: FunctionHost, config: RuntimeConfig, metrics: Metrics, logger?: Logger): Promise<Model> {
  const fn = host.fn;
  const model = await loadModel(fn.modelPath, {
    // A dead inference thread: not ready (readiness and probes answer 503 naming why) until the
    // model has started a new one.
    onUnavailable(reason) {
      host.setUnavailable(reason);
      logger?.log('error', 'model unavailable', { fn: fn.name, error: reason });
    },
    onAvailable() {
      host.setAvailable();
      logger?.log('info', 'model available again', { fn: fn.name });
    },
    onPlacement(placement, why) {
      logger?.log('info', placement === 'main' ? 'model runs on the main thread' : 'model runs on its inference thread', { fn: fn.name, reason: why });
    },
    ...sessionSettingsOf(config),
    thread: config.inferenceThread,
    batching: fn.batching,
    maxQueue: fn.limits.maxQueue,
    maxQueueMs: fn.limits.maxQueueMs,
    ...modelMetricsOptions(metrics, fn.name),
  });
  host.setModel(model);
  metrics.modelLoadSeconds.set({ model: fn.name }, model.loadMs / 1000);
  return model;
}

/**
 * Loads a function's model and builds its app, without listening.
 * Throws ModelLoadError when the model cannot load.
 *
 * @example const { app } = await prepareFunction(fn, readConfig()); await app.request('/v2');
 */
export async function prepareFunction(whole: ResolvedFunction, config: RuntimeConfig, logger: Logger = createLogger(config.logLevel)): Promise<PreparedFunction> {
  const fn = servedVersion(whole, config.version);
  if (!fn) throw new ConfigError(`MODELFN_VERSION=${JSON.stringify(config.version)}: function '${whole.name}' has no such version (versions: ${whole.versions.map((v) => v.version).join(', ')})`);
  const host = new FunctionHost(fn);
  // One version among several: its series say which.
  const metrics = createMetrics(fn.versions.length > 1 ? { version: fn.version } : {});
  const activity = createActivity();
  const { app } = createFunctionApp(host, { config, logger, metrics, activity });
  const model = await loadFunctionModel(host, config, metrics, logger);
  logger.log('info', 'model loaded', { fn: fn.name, model: fn.modelFile, load_ms: Math.round(model.loadMs * 10) / 10, ...(model.loadedEarly ? { created_early: true } : {}) });
  return { host, app, metrics, model, activity };
}

/**
 * Loads the function's model, then listens. Throws ModelLoadError when the model cannot load.
 *
 * @example const running = await startFunction(fn, readConfig()); await running.shutdown();
 */
export async function startFunction(fn: ResolvedFunction, config: RuntimeConfig, logger: Logger = createLogger(config.logLevel)): Promise<RunningFunction> {
  const beforeLoad = performance.now();
  const { host, app, model, metrics, activity } = await prepareFunction(fn, config, logger);
  // performance.now() counts from the process's start.
  metrics.startupSeconds.set({ phase: 'process' }, beforeLoad / 1000);
  metrics.startupSeconds.set({ phase: 'model_load' }, model.loadMs / 1000);
  const startup = { processMs: beforeLoad, modelLoadMs: model.loadMs, warmUpMs: 0 };
  if (config.warmUp) {
    // Ready only once warm: the listener opens after the example ran.
    const warm = await warmUp(host, config.maxElements);
    startup.warmUpMs = warm.ms;
    metrics.startupSeconds.set({ phase: 'warm_up' }, warm.ms / 1000);
    if (warm.error) logger.log('warn', 'warm-up inference failed; serving anyway', { fn: fn.name, error: warm.error });
    else logger.log('info', 'warmed up', { fn: fn.name, warm_up_ms: Math.round(warm.ms * 10) / 10 });
  }
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, () => resolve(s as Server)) as Server;
    s.once('error', reject);
  });
  const stopShedding = shedWhenBehind(server, {
    lagMs: config.shedLagMs,
    onShed: () => metrics.shed.inc({ model: fn.name, reason: 'server_behind' }),
    report: (refused) => logger.log('warn', 'the server is behind: requests refused before their body was read', { fn: fn.name, refused, lag_ms: config.shedLagMs }),
  });
  answerClientErrorsAsJson(server);
  keepConnections(server);
  const port = (server.address() as AddressInfo).port;
  logger.log('info', 'listening', { fn: fn.name, host: config.host, port, prefix: fn.prefix, ...(process.env.MODELFN_WORKER_ID ? { worker: Number(process.env.MODELFN_WORKER_ID) } : {}) });
  reportListening();

  // While closing, answers say `Connection: close`, so a proxy does not reuse their connections.
  let closingConnections = false;
  server.prependListener('request', (_req, res: ServerResponse) => {
    if (closingConnections) res.shouldKeepAlive = false;
  });
  /**
   * Closes the listener and waits for the connections to end; cuts them off after `timeoutMs`.
   * Idle keep-alive connections go first: a proxy holding one would otherwise send it the next
   * request. Requests arriving meanwhile on open connections are still answered.
   */
  const close = (timeoutMs: number) => new Promise<{ drained: boolean }>((resolve) => {
    closingConnections = true;
    server.closeIdleConnections();
    const idle = setInterval(() => server.closeIdleConnections(), 50);
    const timer = setTimeout(() => {
      logger.log('warn', 'closing connections with requests still in flight', { fn: fn.name });
      clearInterval(idle);
      server.closeAllConnections();
      resolve({ drained: false });
    }, timeoutMs);
    server.close(() => {
      clearTimeout(timer);
      clearInterval(idle);
      resolve({ drained: true });
    });
    server.closeIdleConnections();
  });
  let closing: Promise<{ drained: boolean }> | undefined;
  const shutdown = () => (closing ??= (async () => {
    host.state = 'draining';
    logger.log('info', 'shutting down', { fn: fn.name, timeout_ms: config.shutdownTimeoutMs });
    const result = await close(config.shutdownTimeoutMs);
    stopShedding();
    await model.release().catch(() => {});
    return result;
  })());
  const listen = () => new Promise<void>((resolve, reject) => {
    if (server.listening) return resolve();
    server.once('error', reject);
    server.listen(port, config.host, () => {
      server.off('error', reject);
      closingConnections = false;
      resolve();
    });
  });
  return {
    host, server, port, metrics, activity, startup, shutdown, listen,
    url: `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`,
    get listening() { return server.listening; },
    stopListening: close,
  };
}

/**
 * Keep-alive for a server behind a proxy that keeps connections: idle connections stay open
 * longer than the proxy keeps them (FUNCTION_KEEPALIVE_TIMEOUT_MS), and the time allowed for a
 * request's headers is longer still, as Node requires for the two to work together.
 */
export function keepConnections(server: Server): void {
  server.keepAliveTimeout = FUNCTION_KEEPALIVE_TIMEOUT_MS;
  server.headersTimeout = FUNCTION_KEEPALIVE_TIMEOUT_MS + 1000;
}

/**
 * Errors Node's HTTP parser answers by itself (headers too large, malformed requests) become
 * JSON too, like every other error.
 */
export function answerClientErrorsAsJson(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const message = status === 431 ? 'request headers are too large' : status === 408 ? 'request timed out' : 'malformed HTTP request';
    const body = JSON.stringify({ error: message });
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
}

/** Exits 0 once drained after SIGTERM or SIGINT (1 when the shutdown timeout cut requests off). */
export function exitOnSignals(running: Pick<RunningFunction, 'shutdown'>, logger: Logger): void {
  const onSignal = (signal: NodeJS.Signals) => {
    logger.log('info', 'signal received', { signal });
    void running.shutdown().then(({ drained }) => {
      logger.log(drained ? 'info' : 'warn', 'stopped', { drained });
      process.exit(drained ? 0 : 1);
    });
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}
