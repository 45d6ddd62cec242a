/**
 * The handlers that turn every failure into `{"error": "..."}`: client errors keep their
 * message, anything unexpected becomes a 500 without details.
 */
import type { Context, ErrorHandler, NotFoundHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { HttpError, clip } from '../core/errors.ts';

/** The longest error message sent; longer ones (echoing a client's path or names) are cut. */
const MAX_MESSAGE = 1000;

/** A JSON error response. */
export function errorResponse(c: Context, status: ContentfulStatusCode, message: string, headers?: Record<string, string>): Response {
  return c.json({ error: clip(message, MAX_MESSAGE) }, status, headers);
}

/** Logs server-side failures; the client only ever sees a generic message. */
export type ErrorLogger = (err: unknown, c: Context) => void;

/**
 * The app's `onError`: client errors keep their message, anything unexpected becomes a 500
 * without details (the stack goes to the log, never to the client).
 */
export function handleError(log: ErrorLogger): ErrorHandler {
  return function handleError(err, c) {
    if (err instanceof HttpError) return errorResponse(c, err.status, err.message, err.headers);
    if (err instanceof HTTPException) {
      if (err.res && err.res.headers.get('content-type')?.includes('application/json')) return err.res;
      const status = err.status as ContentfulStatusCode;
      return errorResponse(c, status, err.message || defaultMessage(status));
    }
    // c.req.json() in a function's own route throws SyntaxError on a malformed body.
    if (err instanceof SyntaxError) return errorResponse(c, 400, `malformed JSON: ${err.message}`);
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
