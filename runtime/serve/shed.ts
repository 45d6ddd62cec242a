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
 *
 * One late turn alone is not a server behind: a garbage collection, a slow synchronous step or a
 * process the machine's other work kept off the CPU (a busy host, a container at its CPU quota)
 * makes a turn late with a few requests in it, and refusing those would fail clients of a server
 * that keeps up. So a late turn refuses only when the loop was late at the previous probe as well
 * (the lateness lasts), or when it has already taken MIN_REQUESTS_LATE requests (a flood), and
 * either only while the process was working. A process kept off the CPU is not working: when the
 * machine's other work holds it for 100 ms, every connection of a closed-loop client (64 clients
 * that each wait for their answer) has a request waiting when it runs again, a few milliseconds of
 * work, not a flood; and a container just thawed on a busy host may be held twice in a row. The
 * process's CPU time since the last tick tells the two apart: lateness of its own work used the
 * CPU for at least WORKING_SHARE of it. (Under a CPU quota below WORKING_SHARE of a core, a
 * throttled process counts as kept off the CPU too, and only the model's queue bounds its work.)
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { STATUS_OF_KIND } from '../http/errors.ts';

/** How often the probe ticks while requests arrive, ms. */
const TICK_MS = 10;
/** The probe stops this long after the last request (an idle server does not wake for it), ms. */
const IDLE_STOP_MS = 1000;
/** Requests since the last probe tick past which one late turn is a flood, not a hiccup. */
const MIN_REQUESTS_LATE = 16;
/** The share of a late turn the process must have spent on the CPU for its lateness to be its own work. */
const WORKING_SHARE = 0.5;

/** The process's CPU time (all threads, user and system), ms. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

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
  let lastTickCpu = cpuMs();
  /** The probe's last interval ran past lagMs: the loop was already late. */
  let behind = false;
  /** For the late turn since the last tick: undefined until asked, then whether the process worked through it. */
  let working: boolean | undefined;
  /** Requests since the last tick. */
  let sinceTick = 0;
  let lastRequest = 0;
  let probe: NodeJS.Timeout | undefined;
  let refused = 0;
  let reported = 0;
  const tick = () => {
    const now = performance.now();
    const cpu = cpuMs();
    // Late, and by the process's own work: a process the machine kept off the CPU (a busy host, a
    // container just thawed) is not behind on its requests.
    behind = now - lastTick - TICK_MS > options.lagMs && cpu - lastTickCpu >= (now - lastTick) * WORKING_SHARE;
    lastTick = now;
    lastTickCpu = cpu;
    working = undefined;
    sinceTick = 0;
    if (refused && lastTick - reported >= 1000) {
      options.report?.(refused);
      refused = 0;
      reported = lastTick;
    }
    if (lastTick - lastRequest > IDLE_STOP_MS) {
      clearInterval(probe);
      probe = undefined;
      behind = false;
    }
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const now = performance.now();
    lastRequest = now;
    sinceTick++;
    if (!probe) {
      lastTick = now;
      lastTickCpu = cpuMs();
      working = undefined;
      sinceTick = 1;
      probe = setInterval(tick, TICK_MS);
      probe.unref();
    } else if (now - lastTick > options.lagMs && (behind || (sinceTick > MIN_REQUESTS_LATE && (working ??= cpuMs() - lastTickCpu >= (now - lastTick) * WORKING_SHARE))) && req.method !== 'GET' && req.method !== 'HEAD') {
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
