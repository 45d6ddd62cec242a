/**
 * Structured JSON logs: one line per event, one line per request.
 */
import type { MiddlewareHandler } from 'hono';
import type { LogLevel } from './config.ts';
import { isTraffic, routeClass } from './route-class.ts';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogSink = (line: string) => void;

export interface Logger {
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
}

let buffered = '';
let flushTimer: NodeJS.Timeout | undefined;

function flushStdout(): void {
  if (flushTimer) clearTimeout(flushTimer);
  flushTimer = undefined;
  if (!buffered) return;
  const out = buffered;
  buffered = '';
  process.stdout.write(out);
}
process.on('exit', flushStdout);

/**
 * Standard output, written in batches: a line per request would otherwise cost a write (and,
 * in a container, a trip through the engine's log pipe) per request. Lines go out within 50 ms,
 * at once past 64 KiB, and when the process exits.
 */
export const stdoutSink: LogSink = (line) => {
  buffered += line;
  if (buffered.length >= 65_536) flushStdout();
  else flushTimer ??= setTimeout(flushStdout, 50).unref();
};

/**
 * A logger writing one JSON object per line.
 *
 * @example createLogger('info').log('info', 'listening', { port: 8080 })
 */
export function createLogger(level: LogLevel, sink: LogSink = stdoutSink): Logger {
  const min = RANK[level];
  return {
    log(lvl, msg, fields) {
      if (RANK[lvl] < min) return;
      sink(`${JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields })}\n`);
    },
  };
}

/**
 * One line per request: id, method, path, status, duration. The request id is the incoming
 * `X-Request-Id` when a client or the gateway sent one (see hono/request-id).
 */
export const accessLog = (logger: Logger, fields: Record<string, unknown> = {}): MiddlewareHandler =>
  async function accessLog(c, next) {
    const started = performance.now();
    await next();
    const status = c.res.status;
    // Probes and the live view's polling arrive every few seconds: keep them out of the info log.
    const quiet = status < 400 && !isTraffic(routeClass(c.req.method, c.req.path));
    logger.log(status >= 500 ? 'error' : quiet ? 'debug' : 'info', 'request', {
      ...fields,
      request_id: c.get('requestId'),
      method: c.req.method,
      path: c.req.path,
      status,
      duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
    });
  };
