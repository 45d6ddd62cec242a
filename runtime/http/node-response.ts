/**
 * The Node response under a request served by @hono/node-server (`c.env.outgoing`), when there is
 * one: `app.request()` in tests and other runtimes have none. Reached for two things that would
 * otherwise cost a Web object per request (issue 22): a header every answer carries, set on the
 * Node response (`setHeader`), where a `c.header()` would build a `Headers` object and take the
 * answer off @hono/node-server's plain-object path; and the end of the exchange ('close'), where
 * reading `c.req.raw.signal` would make @hono/node-server create an AbortController per request.
 */
import { ServerResponse } from 'node:http';
import type { Context } from 'hono';

export function nodeResponse(c: Context): ServerResponse | undefined {
  const outgoing: unknown = (c.env as { outgoing?: unknown } | undefined)?.outgoing;
  return outgoing instanceof ServerResponse ? outgoing : undefined;
}
