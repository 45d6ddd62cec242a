/**
 * The handlers that turn every failure into `{"error": "..."}`, and the one table from the
 * engine's error kinds to HTTP statuses. Client errors keep their message; the server's own
 * failures answer a generic message with the request id, their detail goes to the log.
 */
import type { Context, ErrorHandler, NotFoundHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { notJson } from '../tensor/infer.ts';
import { HttpError, ModelfnError, SERVER_KINDS, clip, type ErrorKind } from '../core/errors.ts';

/**
 * HTTP's status for each of the engine's error kinds (core/errors.ts). `cancelled` is nginx's
 * 499: nobody reads it, the client has gone.
 */
export const STATUS_OF_KIND: Readonly<Record<ErrorKind, ContentfulStatusCode>> = {
  invalid_input: 400,
  not_found: 404,
  overloaded: 429,
  deadline_exceeded: 504,
  cancelled: 499 as ContentfulStatusCode,
  unavailable: 503,
  model_failure: 500,
  internal: 500,
};

/** The client's answer to an engine error: status, message, headers. */
export function answerOf(err: ModelfnError): { status: ContentfulStatusCode; message: string; headers: Record<string, string> } {
  const status = STATUS_OF_KIND[err.kind];
  const headers: Record<string, string> = {};
  const retry = err.options.retryAfterSeconds;
  if (retry !== undefined) headers['Retry-After'] = String(retry);
  else if (status === 429 || status === 503) headers['Retry-After'] = '1';
  return { status, message: err.message, headers };
}

/** The longest error message sent; longer ones (echoing a client's path or names) are cut. */
const MAX_MESSAGE = 1000;

/** A JSON error response; a server failure carries the request id the log line has. */
export function errorResponse(c: Context, status: ContentfulStatusCode, message: string, headers?: Record<string, string>): Response {
  const id = status >= 500 ? c.get('requestId') : undefined;
  return c.json(id ? { error: clip(message, MAX_MESSAGE), request_id: id } : { error: clip(message, MAX_MESSAGE) }, status, headers);
}

/** Logs server-side failures; the client only ever sees a generic message. */
export type ErrorLogger = (err: unknown, c: Context) => void;

/**
 * The app's `onError`: client errors keep their message, anything unexpected becomes a 500
 * without details (the stack goes to the log, never to the client).
 */
export function handleError(log: ErrorLogger): ErrorHandler {
  return function handleError(err, c) {
    if (err instanceof ModelfnError) {
      const { status, message, headers } = answerOf(err);
      if (SERVER_KINDS.has(err.kind)) {
        log(err.options.detail ? `${err.message}: ${err.options.detail}` : err, c);
        return errorResponse(c, status, `${message}; the server's log has the details under this request id`, headers);
      }
      return errorResponse(c, status, message, headers);
    }
    if (err instanceof HttpError) return errorResponse(c, err.status, err.message, err.headers);
    if (err instanceof HTTPException) {
      if (err.res && err.res.headers.get('content-type')?.includes('application/json')) return err.res;
      const status = err.status as ContentfulStatusCode;
      return errorResponse(c, status, err.message || defaultMessage(status));
    }
    // c.req.json() in a function's own route throws SyntaxError on a malformed body. The parser's
    // own words stay out of the answer (they are the runtime's, and differ between Node versions).
    if (err instanceof SyntaxError) return errorResponse(c, 400, notJson(err));
    // The client went away in the middle of its body (Node's 'aborted'): not a server failure.
    if (err instanceof Error && err.message === 'aborted' && (err as NodeJS.ErrnoException).code === 'ECONNRESET') {
      return errorResponse(c, 400, 'the client closed the connection before sending the whole request body');
    }
    log(err, c);
    return errorResponse(c, 500, 'internal server error');
  };
}

/** The app's `notFound`: a JSON 404 naming the path. */
export const handleNotFound: NotFoundHandler = (c) =>
  errorResponse(c, 404, `no route for ${c.req.method} ${clip(c.req.path)}`);

function defaultMessage(status: number): string {
  switch (status) {
    case 400: return 'bad request';
    case 401: return 'unauthorized';
    case 413: return 'request body too large';
    case 504: return 'request timed out';
    default: return `request failed with status ${status}`;
  }
}
