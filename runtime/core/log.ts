/**
 * Structured JSON logs: one line per event, one line per request.
 */
import type { MiddlewareHandler } from 'hono';
import type { LogLevel } from './config.ts';
import { isTraffic, routeClassOf } from './route-class.ts';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogSink = (line: string) => void;

export interface Logger {
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
  /** Whether lines at this level are written: a caller can skip building one that is not. */
  enabled(level: LogLevel): boolean;
  /** Writes a line built by the caller: one JSON object, `time`, `level` and `msg` first, then `\n`. */
  write(line: string): void;
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
    enabled: (lvl) => RANK[lvl] >= min,
    write: sink,
  };
}

/**
 * One line per request: id, method, path, status, duration. The request id is the incoming
 * `X-Request-Id` when a client or the gateway sent one (see http/request-id.ts).
 */
export const accessLog = (logger: Logger, fields: Record<string, unknown> = {}): MiddlewareHandler => {
  // The line is built by hand, its constant part once: the same JSON as logger.log would write,
  // without an object spread and a JSON.stringify of the whole per request (issue 22).
  const constant = Object.entries(fields).map(([k, v]) => `,${JSON.stringify(k)}:${JSON.stringify(v)}`).join('');
  return async function accessLog(c, next) {
    const started = performance.now();
    await next();
    const status = c.res.status;
    // Probes and the live view's polling arrive every few seconds: keep them out of the info log.
    const quiet = status < 400 && !isTraffic(routeClassOf(c));
    const level = status >= 500 ? 'error' : quiet ? 'debug' : 'info';
    if (!logger.enabled(level)) return;
    const id = c.get('requestId');
    const duration = Math.round((performance.now() - started) * 1000) / 1000;
    logger.write(`{"time":"${new Date().toISOString()}","level":"${level}","msg":"request"${constant}${id === undefined ? '' : `,"request_id":${JSON.stringify(id)}`},"method":${JSON.stringify(c.req.method)},"path":${JSON.stringify(c.req.path)},"status":${status},"duration_ms":${duration}}\n`);
  };
};
