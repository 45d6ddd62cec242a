/**
 * What a bundle's @hono/node-server gets in place of `node:http2` (builder/bundle.ts). A function
 * serves HTTP/1.1 only (its server is node:http's; the gateway speaks to clients), so no request it
 * sees is an Http2ServerRequest: the adapter's `instanceof` checks stay false, as they are with
 * Node's module. Node's http2 would load http2 and tls at every start of a container for nothing.
 */
export class Http2ServerRequest {}

/** The one http2 constant the adapter reads, on a path only an HTTP/2 request takes. */
export const constants = { NGHTTP2_NO_ERROR: 0 };
