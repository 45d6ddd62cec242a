/**
 * The error a client may see: thrown anywhere below the HTTP layer (codecs, batching, a
 * function's own code), answered by runtime/http/errors.ts as `{"error": "..."}` with its status.
 */
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/**
 * An error whose message is meant for the client.
 *
 * @example throw new HttpError(400, "input 'x': expected FP32, received INT64")
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
