/**
 * Each request's id: the incoming `X-Request-Id` when it is a plausible one (at most 200 word
 * characters, `-` or `=`; nginx forwards the client's or its own), else a new UUID. It is
 * `c.get('requestId')` for the logs and error answers, and every answer carries it back.
 *
 * Not hono/request-id: its `c.header()` gives every answer a `Headers` object, which
 * @hono/node-server then iterates to build Node's header record. Served by @hono/node-server, the
 * header goes on the Node response itself (Node merges it with the answer's own headers when
 * they are written); elsewhere (`app.request()`), on the answer as hono/request-id does.
 */
import { randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { nodeResponse } from './node-response.ts';

declare module 'hono' {
  interface ContextVariableMap {
    requestId: string;
  }
}

const PLAUSIBLE = /^[\w\-=]{1,200}$/;

/**
 * The request id middleware; `also` names headers every answer carries besides (the function's
 * version), set the same way.
 *
 * @example app.use(requestId({ 'X-Modelfn-Version': '2' }));
 */
export const requestId = (also: Record<string, string> = {}): MiddlewareHandler => {
  const extra = Object.entries(also);
  return function requestId(c, next) {
    const incoming = c.req.header('x-request-id');
    const id = incoming !== undefined && PLAUSIBLE.test(incoming) ? incoming : randomUUID();
    c.set('requestId', id);
    const outgoing = nodeResponse(c);
    if (outgoing && !outgoing.headersSent) {
      outgoing.setHeader('X-Request-Id', id);
      for (const [name, value] of extra) outgoing.setHeader(name, value);
      return next();
    }
    c.header('X-Request-Id', id);
    if (!extra.length) return next();
    // Headers set before the handler runs are dropped when it returns a Response of its own.
    return next().then(() => {
      for (const [name, value] of extra) c.header(name, value);
    });
  };
};
