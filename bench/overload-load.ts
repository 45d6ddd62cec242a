/**
 * Load generators for the overload benchmark: a closed loop that measures what a function can
 * serve, and an open loop of impatient clients (a fixed request rate, whatever the server does;
 * each client gives up after a timeout and closes its connection, as a browser or an SDK with a
 * timeout does).
 */
import { Agent, request } from 'node:http';

export interface Target {
  url: string;
  body: string;
  headers: Record<string, string>;
}

export interface OpenLoopResult {
  /** Requests sent per second. */
  offered: number;
  sent: number;
  /** 2xx answers that arrived within the give-up time. */
  inTime: number;
  /** 429 and 503 answers (with Retry-After), and how many of them lacked it. */
  shed: number;
  shedWithoutRetryAfter: number;
  /** Any other status: by status. */
  other: Record<string, number>;
  /** Connection errors (refused, reset) before an answer. */
  errors: number;
  /** Clients that gave up before an answer. */
  gaveUp: number;
  /** Latency of the in-time answers and of the refusals, ms. */
  answered: { p50: number; p99: number };
  refused: { p50: number; p99: number };
}

const quantile = (xs: number[], q: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

const round = (x: number) => Math.round(x * 10) / 10;

/** One request; resolves with its status (0: error, -1: gave up) and latency in ms. */
function send(agent: Agent, target: Target, giveUpMs: number): Promise<{ status: number; ms: number; retryAfter: boolean }> {
  return new Promise((resolve) => {
    const started = performance.now();
    let settled = false;
    const done = (status: number, retryAfter = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ status, ms: performance.now() - started, retryAfter });
    };
    const req = request(target.url, { method: 'POST', agent, headers: { ...target.headers, 'Content-Length': Buffer.byteLength(target.body) } }, (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode ?? 0, res.headers['retry-after'] !== undefined));
      res.on('error', () => done(0));
    });
    // The client gives up: it closes its connection, as an impatient client does.
    const timer = setTimeout(() => {
      done(-1);
      req.destroy();
    }, giveUpMs);
    req.on('error', () => done(0));
    req.end(target.body);
  });
}

/**
 * The most answers/s the target gives to `concurrency` patient clients, each sending its next
 * request when the last was answered.
 */
export async function closedLoop(target: Target, concurrency: number, seconds: number): Promise<{ rps: number; p50: number; errors: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const end = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  let errors = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const r = await send(agent, target, 30_000);
      if (r.status >= 200 && r.status < 300) latencies.push(r.ms);
      else errors++;
    }
  }));
  agent.destroy();
  return { rps: latencies.length / seconds, p50: round(quantile(latencies, 0.5)), errors };
}

/** `rate` requests/s for `seconds`, each client giving up after `giveUpMs`. */
export async function openLoop(target: Target, rate: number, seconds: number, giveUpMs: number): Promise<OpenLoopResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 4096 });
  const results: Promise<{ status: number; ms: number; retryAfter: boolean }>[] = [];
  const started = performance.now();
  // Requests go out on a 5 ms tick, as many as the rate says should have gone by then.
  await new Promise<void>((finish) => {
    const tick = setInterval(() => {
      const elapsed = performance.now() - started;
      const due = Math.min(rate * seconds, Math.floor((elapsed / 1000) * rate));
      while (results.length < due) results.push(send(agent, target, giveUpMs));
      if (elapsed >= seconds * 1000) {
        clearInterval(tick);
        finish();
      }
    }, 5);
  });
  const sentIn = (performance.now() - started) / 1000;
  const all = await Promise.all(results);
  agent.destroy();
  const answered = all.filter((r) => r.status >= 200 && r.status < 300 && r.ms <= giveUpMs);
  const refused = all.filter((r) => r.status === 429 || r.status === 503);
  const other: Record<string, number> = {};
  for (const r of all) if (r.status > 0 && !(r.status >= 200 && r.status < 300) && r.status !== 429 && r.status !== 503) other[r.status] = (other[r.status] ?? 0) + 1;
  return {
    offered: round(all.length / sentIn),
    sent: all.length,
    inTime: answered.length,
    shed: refused.length,
    shedWithoutRetryAfter: refused.filter((r) => !r.retryAfter).length,
    other,
    errors: all.filter((r) => r.status === 0).length,
    gaveUp: all.filter((r) => r.status === -1).length,
    answered: { p50: round(quantile(answered.map((r) => r.ms), 0.5)), p99: round(quantile(answered.map((r) => r.ms), 0.99)) },
    refused: { p50: round(quantile(refused.map((r) => r.ms), 0.5)), p99: round(quantile(refused.map((r) => r.ms), 0.99)) },
  };
}

/** Latency of single requests, one after the other (the first after a load: is a backlog left?). */
export async function single(target: Target, count: number): Promise<number[]> {
  const agent = new Agent({ keepAlive: false });
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(round((await send(agent, target, 30_000)).ms));
  agent.destroy();
  return out;
}
