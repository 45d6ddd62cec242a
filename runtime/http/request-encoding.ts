/**
 * Request bodies sent with `Content-Encoding` (gzip, deflate, identity), as Triton's and other
 * standard clients send them: decoded before any route reads the body, so the protocol routes,
 * /predict and a function's own routes all see the body as it was before compression
 * (Inference-Header-Content-Length included, as Triton reads it).
 *
 * The decoded size is held to the body limit while inflating: zlib stops at the limit, so a
 * small compressed bomb costs at most the limit in memory and time, never its full size.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Context, MiddlewareHandler, Next } from 'hono';
import { HttpError } from '../core/errors.ts';

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const inflateRaw = promisify(zlib.inflateRaw);

type Decoder = (data: Uint8Array, options: zlib.ZlibOptions) => Promise<Buffer>;

/**
 * "deflate" is the zlib format (RFC 9110, and what Triton's client sends); some clients send
 * bare deflate data instead, which has no zlib header to show.
 */
function isZlib(data: Uint8Array): boolean {
  return data.length >= 2 && (data[0] & 0x0f) === 8 && ((data[0] << 8) | data[1]) % 31 === 0;
}

const DECODERS: Record<string, Decoder> = {
  gzip: gunzip,
  'x-gzip': gunzip,
  deflate: (data, options) => (isZlib(data) ? inflate : inflateRaw)(data, options),
};

/** The content codings a request body may carry. */
export const REQUEST_ENCODINGS = ['gzip', 'deflate', 'identity'] as const;

export interface DecodeRequestBodyOptions {
  /** Largest decoded body, in bytes. */
  maxSize: number;
  /** The answer when the decoded body would be larger than maxSize. */
  onTooLarge: (c: Context) => Response | Promise<Response>;
}

/** The codings of a Content-Encoding header, in the order they were applied; identity left out. */
function codings(header: string): string[] {
  return header.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '' && s !== 'identity');
}

/**
 * Decodes compressed request bodies in place: later handlers read the decoded body with
 * `c.req.json()`, `c.req.arrayBuffer()` and the like, and see neither Content-Encoding nor the
 * compressed Content-Length. Unknown codings answer 415 with the supported ones in
 * Accept-Encoding (RFC 9110, 15.5.16); data that does not decode is a 400.
 *
 * @example app.use(decodeRequestBody({ maxSize: 10 * 1024 * 1024, onTooLarge: (c) => c.json({ error: 'too large' }, 413) }))
 */
export const decodeRequestBody = ({ maxSize, onTooLarge }: DecodeRequestBodyOptions): MiddlewareHandler => {
  const decode = async (c: Context, next: Next, header: string) => {
    const steps = codings(header).reverse();
    const unknown = steps.find((s) => !DECODERS[s]);
    if (unknown !== undefined) {
      throw new HttpError(415, `unsupported Content-Encoding '${unknown.slice(0, 40)}'; send the body as gzip, deflate or identity`, { 'Accept-Encoding': REQUEST_ENCODINGS.join(', ') });
    }
    const raw = c.req.raw;
    if (steps.length === 0 || raw.method === 'GET' || raw.method === 'HEAD') return next();
    // Read from the raw request: hono's own body cache would keep the compressed bytes.
    let body: Uint8Array = new Uint8Array(await raw.arrayBuffer());
    for (const step of steps) {
      try {
        body = await DECODERS[step](body, { maxOutputLength: maxSize, chunkSize: 64 * 1024 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return onTooLarge(c);
        throw new HttpError(400, `request body is not valid ${step} data (${String((err as Error).message).slice(0, 100)})`);
      }
    }
    const headers = new Headers(raw.headers);
    headers.delete('content-encoding');
    headers.set('content-length', String(body.byteLength));
    c.req.raw = new Request(raw.url, { method: raw.method, headers, body: body as Uint8Array<ArrayBuffer>, signal: raw.signal });
    return next();
  };
  // Not async: the common path (no Content-Encoding) adds no promise of its own.
  return function decodeRequestBody(c, next) {
    const header = c.req.header('content-encoding');
    return header === undefined ? next() : decode(c, next, header);
  };
};
