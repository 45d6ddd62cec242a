/**
 * Shedding before the HTTP work: when the server's own event loop falls behind, new requests
 * that would do work are refused at the door, before routing, body reading and decoding.
 *
 * The model's queue (engine/queue.ts) bounds the work waiting for a model. It cannot bound the
 * work waiting for the server itself: when requests arrive faster than the process can read and
 * answer them (a small model such as iris, whose run takes microseconds, is bound by HTTP work),
 * they wait in the sockets' buffers, first come first served, until every one is older than its
 * client's patience. The server then spends all its time answering clients that have gone.
 *
 * The sign is the event loop's lateness: a probe timer that ticks every few milliseconds fires
 * late by as long as the loop spent on one turn's work. A request handled while the current turn
 * has run past `lagMs` is refused at once with the `overloaded` answer (429 JSON, `Retry-After`,
 * built once), which costs a small fraction of serving it, so the turn ends soon and the requests
 * the next turn serves are fresh. GET and HEAD requests (health, readiness, metrics, pages) are
 * never refused here: they are cheap, and a probe must not fail because clients are many.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { STATUS_OF_KIND } from '../http/errors.ts';

/** How often the probe ticks while requests arrive, ms. */
const TICK_MS = 10;
/** The probe stops this long after the last request (an idle server does not wake for it), ms. */
const IDLE_STOP_MS = 1000;

export interface ShedOptions {
  /** A loop turn longer than this (ms) refuses the work that arrives in it; 0 turns shedding off. */
  lagMs: number;
  /** Called for each request refused (metrics). */
  onShed?: () => void;
  /** Called at most once a second while shedding, with the requests refused since the last call (the log). */
  report?: (refused: number) => void;
}

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

const BODY = JSON.stringify({ error: 'the server is overloaded; retry shortly' });
const HEADERS = {
  'Content-Type': 'application/json',
  'Content-Length': String(Buffer.byteLength(BODY)),
  'Retry-After': '1',
  'Cache-Control': 'no-store',
};

/**
 * Puts the shedder in front of the server's request listeners (call it once, right after the
 * server is made). Returns a function that stops its probe.
 *
 * @example const stop = shedWhenBehind(server, { lagMs: 100 });
 */
export function shedWhenBehind(server: Server, options: ShedOptions): () => void {
  if (options.lagMs <= 0) return () => {};
  const listeners = server.listeners('request') as Listener[];
  server.removeAllListeners('request');
  const status = STATUS_OF_KIND.overloaded;
  let lastTick = performance.now();
  let lastRequest = 0;
  let probe: NodeJS.Timeout | undefined;
  let refused = 0;
  let reported = 0;
  const tick = () => {
    lastTick = performance.now();
    if (refused && lastTick - reported >= 1000) {
      options.report?.(refused);
      refused = 0;
      reported = lastTick;
    }
    if (lastTick - lastRequest > IDLE_STOP_MS) {
      clearInterval(probe);
      probe = undefined;
    }
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const now = performance.now();
    lastRequest = now;
    if (!probe) {
      lastTick = now;
      probe = setInterval(tick, TICK_MS);
      probe.unref();
    } else if (now - lastTick > options.lagMs && req.method !== 'GET' && req.method !== 'HEAD') {
      options.onShed?.();
      refused++;
      // The body is discarded unread (not parsed, not decoded); the connection stays usable.
      req.resume();
      res.writeHead(status, HEADERS).end(BODY);
      return;
    }
    for (const listener of listeners) listener.call(server, req, res);
  });
  return () => {
    clearInterval(probe);
    probe = undefined;
  };
}
