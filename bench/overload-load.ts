/**
 * Load generators for the overload benchmark: a closed loop that measures what a function can
 * serve, and an open loop of impatient clients (a fixed request rate, whatever the server does;
 * each client gives up after a timeout and closes its connection, as a browser or an SDK with a
 * timeout does).
 */
import { connect, type Socket } from 'node:net';

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

interface Outcome {
  status: number;
  ms: number;
  retryAfter: boolean;
}

/**
 * HTTP/1.1 over raw sockets, one request at a time per connection, keep-alive: a client that
 * costs a fraction of node:http's, so that on a machine it shares with the server the load it
 * offers is the load asked for, and answers are seen when they arrive rather than when a busy
 * client gets round to them. It reads the status line, `Content-Length` and whether there is a
 * `Retry-After`, and nothing else.
 */
class RawClient {
  private readonly idle: Conn[] = [];
  /** Requests waiting for a connection: at most `maxConnections` are open, as a client library's pool allows. */
  private readonly waiting: { started: number; giveUpMs: number; done: (o: Outcome) => void }[] = [];
  private open = 0;
  private readonly request: Buffer;
  private readonly host: string;
  private readonly port: number;

  constructor(target: Target, private readonly maxConnections = 4096) {
    const url = new URL(target.url);
    this.host = url.hostname;
    this.port = Number(url.port || 80);
    const headers = { Host: url.host, ...target.headers, 'Content-Length': String(Buffer.byteLength(target.body)) };
    this.request = Buffer.from(`POST ${url.pathname}${url.search} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${target.body}`, 'latin1');
  }

  /** Sends one request; `giveUpMs` later an unanswered one is abandoned and its connection closed. */
  send(giveUpMs: number): Promise<Outcome> {
    return new Promise((resolve) => this.dispatch(performance.now(), giveUpMs, resolve));
  }

  private dispatch(started: number, giveUpMs: number, done: (o: Outcome) => void): void {
    let conn = this.idle.pop();
    // A connection the server closed while idle is dropped.
    while (conn && conn.socket.destroyed) conn = this.idle.pop();
    if (!conn && this.open >= this.maxConnections) {
      this.waiting.push({ started, giveUpMs, done });
      return;
    }
    if (!conn) {
      this.open++;
      conn = new Conn(this.port, this.host, (c) => this.released(c), () => this.closed());
    }
    conn.send(this.request, started, giveUpMs, done);
  }

  /** A connection is free again: the oldest waiting request still within its time takes it. */
  private released(conn: Conn): void {
    this.idle.push(conn);
    this.next();
  }

  private closed(): void {
    this.open--;
    this.next();
  }

  private next(): void {
    const now = performance.now();
    while (this.waiting.length) {
      const w = this.waiting.shift()!;
      if (now - w.started >= w.giveUpMs) {
        // It gave up while waiting for a connection.
        w.done({ status: -1, ms: now - w.started, retryAfter: false });
        continue;
      }
      this.dispatch(w.started, w.giveUpMs - (now - w.started), (o) => w.done({ ...o, ms: performance.now() - w.started }));
      return;
    }
  }

  close(): void {
    for (const c of this.idle.splice(0)) c.socket.destroy();
  }
}

class Conn {
  readonly socket: Socket;
  private buffer = '';
  private started = 0;
  private timer?: NodeJS.Timeout;
  private done?: (o: Outcome) => void;

  constructor(port: number, host: string, private readonly release: (c: Conn) => void, onClosed: () => void) {
    this.socket = connect({ port, host, noDelay: true });
    this.socket.setEncoding('latin1');
    this.socket.on('data', (chunk: string) => this.onData(chunk));
    this.socket.on('error', () => this.finish({ status: 0, ms: performance.now() - this.started, retryAfter: false }, false));
    this.socket.on('close', () => {
      onClosed();
      this.socket.destroy();
      this.finish({ status: 0, ms: performance.now() - this.started, retryAfter: false }, false);
    });
  }

  send(request: Buffer, started: number, giveUpMs: number, done: (o: Outcome) => void): void {
    this.started = started;
    this.done = done;
    this.buffer = '';
    // The client gives up: it closes its connection, as an impatient client does.
    this.timer = setTimeout(() => {
      this.finish({ status: -1, ms: performance.now() - started, retryAfter: false }, false);
      this.socket.destroy();
    }, giveUpMs);
    this.socket.write(request);
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    const head = this.buffer.indexOf('\r\n\r\n');
    if (head < 0 || !this.done) return;
    const headers = this.buffer.slice(0, head).toLowerCase();
    const length = Number(/\r\ncontent-length: *(\d+)/.exec(headers)?.[1] ?? 0);
    if (this.buffer.length - head - 4 < length) return;
    const status = Number(headers.slice(9, 12));
    const keep = !/\r\nconnection: *close/.test(headers);
    this.finish({ status, ms: performance.now() - this.started, retryAfter: headers.includes('\r\nretry-after:') }, keep);
    if (!keep) this.socket.end();
  }

  private finish(outcome: Outcome, reusable: boolean): void {
    const done = this.done;
    if (!done) return;
    this.done = undefined;
    clearTimeout(this.timer);
    done(outcome);
    if (reusable) this.release(this);
  }
}

/**
 * The most answers/s the target gives to `concurrency` patient clients, each sending its next
 * request when the last was answered.
 */
export async function closedLoop(target: Target, concurrency: number, seconds: number): Promise<{ rps: number; p50: number; errors: number }> {
  const client = new RawClient(target);
  const end = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  let errors = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const r = await client.send(30_000);
      if (r.status >= 200 && r.status < 300) latencies.push(r.ms);
      else errors++;
    }
  }));
  client.close();
  return { rps: latencies.length / seconds, p50: round(quantile(latencies, 0.5)), errors };
}

/** `rate` requests/s for `seconds`, each client giving up after `giveUpMs`. */
export async function openLoop(target: Target, rate: number, seconds: number, giveUpMs: number): Promise<OpenLoopResult> {
  const client = new RawClient(target);
  const results: Promise<Outcome>[] = [];
  const started = performance.now();
  // Requests go out on a 5 ms tick, as many as the rate says should have gone by then.
  await new Promise<void>((finish) => {
    const tick = setInterval(() => {
      const elapsed = performance.now() - started;
      const due = Math.min(rate * seconds, Math.floor((elapsed / 1000) * rate));
      while (results.length < due) results.push(client.send(giveUpMs));
      if (elapsed >= seconds * 1000) {
        clearInterval(tick);
        finish();
      }
    }, 5);
  });
  const sentIn = (performance.now() - started) / 1000;
  const all = await Promise.all(results);
  client.close();
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
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    // A new connection each, as a client arriving after the load would.
    const client = new RawClient(target);
    out.push(round((await client.send(30_000)).ms));
    client.close();
  }
  return out;
}
