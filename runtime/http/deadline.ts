/**
 * Each request's deadline and cancellation. The request gets an AbortSignal that fires when its
 * client disconnects or when the function's timeout passes; the model's queue and inference
 * thread drop work whose signal fired or whose deadline passed, so a 504 (or a client that gave
 * up) means the work stopped, not that it goes on for nobody (gRPC's deadline propagation;
 * Triton's per-request timeouts). Routes reach the signal as `ctx.signal(c)` (FunctionContext).
 */
import type { Context, MiddlewareHandler } from 'hono';
import { ModelfnError } from '../core/errors.ts';
import { setDeadline } from '../engine/queue.ts';

declare module 'hono' {
  interface ContextVariableMap {
    /** Fires when the request's client leaves or its time runs out; the reason says which. */
    signal: AbortSignal;
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
 * Gives each request its signal and deadline, and answers `onTimeout` when the deadline passes.
 *
 * @example app.use(deadline({ timeoutMs: 30_000, message: 'timed out', onTimeout: (c, m) => c.json({ error: m }, 504) }))
 */
export const deadline = ({ timeoutMs, message, onTimeout }: DeadlineOptions): MiddlewareHandler => function deadline(c, next) {
  const controller = new AbortController();
  const signal = controller.signal;
  setDeadline(signal, Date.now() + timeoutMs);
  c.set('signal', signal);
  // @hono/node-server aborts the request's own signal when the client closes the connection
  // before the answer was sent.
  const client = c.req.raw.signal;
  const onClientGone = () => controller.abort(new ModelfnError('cancelled', 'the client closed the connection; its work was dropped'));
  client.addEventListener('abort', onClientGone, { once: true });
  // One promise settled by whichever comes first, the answer or the deadline: not a promise for
  // the timeout and a Promise.race on every request (issue 22).
  return new Promise<void>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      client.removeEventListener('abort', onClientGone);
    };
    const timer = setTimeout(() => {
      done();
      controller.abort(new ModelfnError('deadline_exceeded', message));
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
