/**
 * Compressed answers (gzip, deflate) for clients that ask with Accept-Encoding, JSON and binary
 * tensors alike, when the body is large enough to gain.
 *
 * Not hono/compress: it judges size by Content-Length, which @hono/node-server's answers built
 * from a string do not carry (every small answer would be compressed), and it leaves
 * application/octet-stream (binary tensors) alone. Here the whole body is at hand (inference
 * answers are built in memory), compressed on zlib's thread pool, and sent compressed only
 * when that made it smaller. Requests without Accept-Encoding pay one header lookup; an answer
 * that says it is under the threshold (Content-Length, which `jsonAnswer` sets) is left as it
 * was built, untouched: reading `res.body` would turn @hono/node-server's lightweight answer into
 * a full Response and take it off its fast path (a third of the requests/s for a 150-byte answer
 * to a client that sends `Accept-Encoding: gzip, deflate`, issue 22).
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Context, MiddlewareHandler } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { accepts } from 'hono/accepts';
import { COMPRESSIBLE_CONTENT_TYPE_REGEX } from 'hono/utils/compress';

const gzip = promisify(zlib.gzip);
const deflate = promisify(zlib.deflate);

export interface CompressResponseOptions {
  /** Smallest body worth compressing, in bytes (default 1024). */
  threshold?: number;
}

function compressible(type: string): boolean {
  return COMPRESSIBLE_CONTENT_TYPE_REGEX.test(type) || /^\s*application\/octet-stream(?:[;\s]|$)/i.test(type);
}

function addVary(headers: Headers): void {
  const vary = headers.get('vary');
  if (!vary) headers.set('Vary', 'Accept-Encoding');
  else if (!/(?:^|,)\s*(?:accept-encoding|\*)\s*(?:,|$)/i.test(vary)) headers.set('Vary', `${vary}, Accept-Encoding`);
}

/**
 * @example app.use(compressResponse({ threshold: 1024 }))
 */
export const compressResponse = ({ threshold = 1024 }: CompressResponseOptions = {}): MiddlewareHandler => {
  const compress: MiddlewareHandler = async (c, next) => {
    await next();
    const res = c.res;
    const headers = res.headers;
    const length = headers.get('content-length');
    // Under the threshold: the same answer, on the same path, as without Accept-Encoding.
    if (length !== null && Number(length) < threshold) return;
    if (c.req.method === 'HEAD') return;
    if (!res.body || res.status === 204 || res.status === 206 || res.status === 304) return;
    if (headers.has('content-encoding') || !compressible(headers.get('content-type') ?? '')) return;
    if (/(?:^|,)\s*no-transform\s*(?:,|$)/i.test(headers.get('cache-control') ?? '')) return;
    addVary(headers);
    const encoding = accepts(c, { header: 'Accept-Encoding', supports: ['gzip', 'deflate'], default: 'identity' });
    if (encoding === 'identity') return;
    const body = new Uint8Array(await res.arrayBuffer());
    let sent: Uint8Array = body;
    if (body.byteLength >= threshold) {
      const packed = await (encoding === 'gzip' ? gzip : deflate)(body);
      if (packed.byteLength < body.byteLength) {
        sent = packed;
        headers.set('Content-Encoding', encoding);
        headers.delete('Content-Length');
      }
    }
    // The body was read: the answer is rebuilt either way. Cleared first, so hono does not
    // copy the old answer's headers (a stale Content-Length among them) onto the new one.
    c.res = undefined;
    c.res = new Response(sent as Uint8Array<ArrayBuffer>, { status: res.status, statusText: res.statusText, headers });
  };
  // Not async: the common path (no Accept-Encoding) adds no promise of its own.
  return function compressResponse(c, next) {
    return c.req.header('accept-encoding') === undefined ? next() : compress(c, next);
  };
};

/**
 * A JSON answer with its Content-Length, so that compressResponse can tell a small one without
 * reading its body.
 *
 * @example return jsonAnswer(c, JSON.stringify({ predictions }))
 */
export function jsonAnswer(c: Context, text: string, status: ContentfulStatusCode = 200): Response {
  return c.body(text, status, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(text)) });
}
