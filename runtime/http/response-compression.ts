/**
 * Compressed answers (gzip, deflate) for clients that ask with Accept-Encoding, JSON and binary
 * tensors alike, when the body is large enough to gain.
 *
 * Not hono/compress: it judges size by Content-Length, which @hono/node-server's answers built
 * from a string do not carry (every small answer would be compressed), and it leaves
 * application/octet-stream (binary tensors) alone.
 *
 * What it costs (issue 22). Requests without Accept-Encoding pay one header lookup. An answer
 * whose size is known to be under the threshold (`jsonAnswer` records it; else Content-Length)
 * is left as it was built, untouched: reading its headers or body would turn @hono/node-server's
 * lightweight answer into a Web object and take it off its fast path (a third of the
 * requests/s for a 150-byte answer to a client sending `Accept-Encoding: gzip, deflate`).
 * Otherwise the body is read up to `streamFrom` bytes: an answer that ended before is compressed
 * in one piece on zlib's thread pool and sent compressed only when that made it smaller (an
 * answer that ended under the threshold is sent as it was); a larger one is compressed once,
 * as a stream: its compressed bytes go to the client as zlib produces them, neither the whole
 * compressed body nor a copy of the answer is held, and the client's leaving cancels it.
 */
import { Readable, pipeline } from 'node:stream';
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
  /** Bodies at least this large are compressed as a stream (default 64 KiB). */
  streamFrom?: number;
}

/** The body size `jsonAnswer` knew when it built an answer, read before any header. */
const BODY_BYTES = Symbol('modelfn.bodyBytes');
type Sized = Response & { [BODY_BYTES]?: number };

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
export const compressResponse = ({ threshold = 1024, streamFrom = 64 * 1024 }: CompressResponseOptions = {}): MiddlewareHandler => {
  const compress: MiddlewareHandler = async (c, next) => {
    await next();
    const res = c.res;
    // Under the threshold: the same answer, on the same path, as without Accept-Encoding.
    const known = (res as Sized)[BODY_BYTES];
    if (known !== undefined && known < threshold) return;
    const headers = res.headers;
    const length = headers.get('content-length');
    if (length !== null && Number(length) < threshold) return;
    if (c.req.method === 'HEAD') return;
    if (!res.body || res.status === 204 || res.status === 206 || res.status === 304) return;
    if (headers.has('content-encoding') || !compressible(headers.get('content-type') ?? '')) return;
    if (/(?:^|,)\s*no-transform\s*(?:,|$)/i.test(headers.get('cache-control') ?? '')) return;
    addVary(headers);
    const encoding = accepts(c, { header: 'Accept-Encoding', supports: ['gzip', 'deflate'], default: 'identity' });
    if (encoding === 'identity') return;
    // The body's first bytes tell a small answer from one to stream.
    const reader = res.body.getReader();
    const head: Uint8Array[] = [];
    let read = 0;
    let ended = false;
    while (read < streamFrom) {
      const chunk = await reader.read();
      if (chunk.done) {
        ended = true;
        break;
      }
      head.push(chunk.value);
      read += chunk.value.byteLength;
    }
    let body: BodyInit;
    if (ended) {
      const whole = head.length === 1 ? head[0] : Buffer.concat(head);
      body = whole as Uint8Array<ArrayBuffer>;
      if (whole.byteLength >= threshold) {
        const packed = await (encoding === 'gzip' ? gzip : deflate)(whole);
        if (packed.byteLength < whole.byteLength) {
          body = packed as Uint8Array<ArrayBuffer>;
          headers.set('Content-Encoding', encoding);
          headers.delete('Content-Length');
        }
      }
    } else {
      body = compressedStream(head, reader, encoding);
      headers.set('Content-Encoding', encoding);
      headers.delete('Content-Length');
    }
    // The body was read: the answer is rebuilt either way. Cleared first, so hono does not
    // copy the old answer's headers (a stale Content-Length among them) onto the new one.
    c.res = undefined;
    c.res = new Response(body, { status: res.status, statusText: res.statusText, headers });
  };
  // Not async: the common path (no Accept-Encoding) adds no promise of its own.
  return function compressResponse(c, next) {
    return c.req.header('accept-encoding') === undefined ? next() : compress(c, next);
  };
};

/**
 * The rest of a body, its first chunks already read, through one zlib stream: each compressed
 * chunk is the answer's as soon as zlib produced it, and the answer's own chunks are read only
 * as fast as the client takes the compressed ones (zlib's and the socket's back-pressure).
 * Cancelling it (the client left) stops zlib and the body's source.
 */
function compressedStream(head: Uint8Array[], rest: ReadableStreamDefaultReader<Uint8Array>, encoding: string): ReadableStream<Uint8Array> {
  async function* chunks(): AsyncGenerator<Uint8Array> {
    try {
      yield* head;
      for (let chunk = await rest.read(); !chunk.done; chunk = await rest.read()) yield chunk.value;
    } finally {
      // Ended early (the client left): let the body's source go.
      rest.cancel().catch(() => {});
    }
  }
  const packer = encoding === 'gzip' ? zlib.createGzip() : zlib.createDeflate();
  // pipeline ends or destroys every stage together; its error (the client left) is not ours.
  pipeline(Readable.from(chunks()), packer, () => {});
  return Readable.toWeb(packer) as ReadableStream<Uint8Array>;
}

/**
 * A JSON answer whose size compressResponse can tell without reading its headers or body.
 *
 * @example return jsonAnswer(c, JSON.stringify({ predictions }))
 */
export function jsonAnswer(c: Context, text: string, status: ContentfulStatusCode = 200): Response {
  // One header in a plain object: hono and @hono/node-server then build no Headers object for
  // it (two make hono build one); @hono/node-server sets Content-Length from the string.
  const res: Sized = c.body(text, status, { 'Content-Type': 'application/json' });
  res[BODY_BYTES] = Buffer.byteLength(text);
  return res;
}
