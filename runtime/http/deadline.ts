/**
 * Each request's deadline and cancellation. The request gets an AbortSignal that fires when its
 * client disconnects or when the function's timeout passes; the model's queue and inference
 * thread drop work whose signal fired or whose deadline passed, so a 504 (or a client that gave
 * up) means the work stopped, not that it goes on for nobody (gRPC's deadline propagation;
 * Triton's per-request timeouts). Routes reach the signal as `ctx.signal(c)` (FunctionContext).
 */
import type { Context, MiddlewareHandler } from 'hono';
import { ModelfnError } from '../core/errors.ts';
import { RequestLife } from '../engine/queue.ts';
import { nodeResponse } from './node-response.ts';

declare module 'hono' {
  interface ContextVariableMap {
    /**
     * Ends when the request's client leaves or its time runs out; the reason says which. Its
     * `signal` is a real AbortSignal, made for the routes that ask (`ctx.signal(c)`).
     */
    life: RequestLife;
  }
}

export interface DeadlineOptions {
  timeoutMs: number;
  /**
   * What the client is told once the time ran out. The same words answer whichever notices
   * first: this middleware, or the route whose work was dropped (the signal's reason).
   */
  message: string;
  /** The answer once the time ran out (the work has been told to stop). */
  onTimeout(c: Context, message: string): Response;
}

/**
 * Gives each request its life (deadline and cancellation), and answers `onTimeout` when the deadline passes.
 *
 * @example app.use(deadline({ timeoutMs: 30_000, message: 'timed out', onTimeout: (c, m) => c.json({ error: m }, 504) }))
 */
export const deadline = ({ timeoutMs, message, onTimeout }: DeadlineOptions): MiddlewareHandler => function deadline(c, next) {
  const life = new RequestLife(Date.now() + timeoutMs);
  c.set('life', life);
  // The client closing its connection before the answer was sent. Served by @hono/node-server:
  // the Node response's 'close' before it finished (what @hono/node-server itself aborts the
  // request's signal on; reading `c.req.raw.signal` would create that AbortController for every
  // request, issue 22). Elsewhere (`app.request()`): the request's own signal.
  const onClientGone = () => life.abort(new ModelfnError('cancelled', 'the client closed the connection; its work was dropped'));
  const outgoing = nodeResponse(c);
  const onClose = () => {
    if (!outgoing!.writableFinished) onClientGone();
  };
  const client = outgoing ? undefined : c.req.raw.signal;
  if (outgoing) outgoing.once('close', onClose);
  else client!.addEventListener('abort', onClientGone, { once: true });
  // One promise settled by whichever comes first, the answer or the deadline: not a promise for
  // the timeout and a Promise.race on every request (issue 22).
  return new Promise<void>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      if (outgoing) outgoing.off('close', onClose);
      else client!.removeEventListener('abort', onClientGone);
    };
    const timer = setTimeout(() => {
      done();
      life.abort(new ModelfnError('deadline_exceeded', message));
      c.res = onTimeout(c, message);
      resolve();
    }, timeoutMs);
    next().then(() => {
      done();
      resolve();
    }, (err: unknown) => {
      done();
      reject(err);
    });
  });
};
