/**
 * Errors in the engine's own words. Below the HTTP layer (codecs, the model queue, the inference
 * thread, function hosts) a failure is a `ModelfnError` of one `ErrorKind`; the edge that speaks
 * to clients maps kinds to its status codes in one table (runtime/http/errors.ts for HTTP; a
 * second transport maps the same kinds to its own, gRPC's codes named beside each kind).
 *
 * `HttpError` is for code that already speaks HTTP: the runtime's HTTP layer and a function's own
 * Hono routes (`throw new HttpError(415, ...)`).
 */
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/**
 * What went wrong, independent of the transport.
 *
 * | kind | whose fault | gRPC |
 * | --- | --- | --- |
 * | `invalid_input` | the request's content (a tensor, a shape, a value) | INVALID_ARGUMENT |
 * | `not_found` | the request names something that is not there | NOT_FOUND |
 * | `overloaded` | nobody's: the model's queue is full, retry later | RESOURCE_EXHAUSTED |
 * | `deadline_exceeded` | nobody's: the request's time ran out, its work was dropped | DEADLINE_EXCEEDED |
 * | `cancelled` | the client left; its work was dropped | CANCELLED |
 * | `unavailable` | the server's: the model cannot run now (loading, restarting, draining) | UNAVAILABLE |
 * | `model_failure` | the model failed on an input that passed every check | INTERNAL |
 * | `internal` | the server's: a bug or a resource it lacks | INTERNAL |
 */
export type ErrorKind =
  | 'invalid_input'
  | 'not_found'
  | 'overloaded'
  | 'deadline_exceeded'
  | 'cancelled'
  | 'unavailable'
  | 'model_failure'
  | 'internal';

/** Kinds whose message is the server's business: the client gets a generic message and a request id. */
export const SERVER_KINDS: ReadonlySet<ErrorKind> = new Set(['model_failure', 'internal']);

/**
 * A failure of one kind. `message` is for the client unless the kind is a server kind; `detail`
 * (never sent to a client) says more for the log.
 *
 * @example throw new ModelfnError('invalid_input', "input 'x': expected FP32, received INT64")
 */
export class ModelfnError extends Error {
  override name = 'ModelfnError';
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly options: { retryAfterSeconds?: number; detail?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
  }
}

/** The request's content is wrong; `message` names what and where. */
export const invalidInput = (message: string): ModelfnError => new ModelfnError('invalid_input', message);

/** Whether `err` is a ModelfnError of `kind`. */
export const isKind = (err: unknown, kind: ErrorKind): err is ModelfnError => err instanceof ModelfnError && err.kind === kind;

/**
 * An error whose status is already HTTP's: the HTTP layer's own, and a function's routes.
 *
 * @example throw new HttpError(415, "send the recording as audio/wav, not 'text/plain'")
 */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** A client's text (a path, a name) for a message, cut short. */
export function clip(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}
