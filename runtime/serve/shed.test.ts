import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { shedWhenBehind } from './shed.ts';

/** Busy for `ms` on the event loop, as a server whose HTTP work outruns it is. */
const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

/** Raw connections, so that every request is in the server's socket buffers before it reads any. */
async function sockets(port: number, n: number): Promise<Socket[]> {
  const out = await Promise.all(Array.from({ length: n }, () => new Promise<Socket>((r) => {
    const s = connect(port, '127.0.0.1', () => r(s));
  })));
  // Let the server accept them all before anything is sent.
  await new Promise((r) => setTimeout(r, 50));
  return out;
}

/** The first answer on a socket: status, headers (lower case), body. */
function answer(s: Socket): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  return new Promise((resolve, reject) => {
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => {
      text += chunk;
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const body = text.slice(end + 4);
      if (body.length < Number(headers['content-length'] ?? 0)) return;
      s.destroy();
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body });
    });
    s.on('error', reject);
  });
}

const post = (i: number) => `POST /predict?i=${i} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"instances":`;

let server: Server | undefined;
let stop: (() => void) | undefined;
afterEach(async () => {
  stop?.();
  server?.closeAllConnections();
  if (server) await new Promise((r) => server!.close(r));
  server = undefined;
});

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Starts a server behind the shedder, answering 200 `{"ok":true}` after `work` (the request's own
 * loop work), and sends it one GET so its probe runs. Returns its port and the requests its own
 * listener saw.
 */
async function shedding(lagMs: number, work: (req: IncomingMessage) => void): Promise<{ port: number; handled: string[] }> {
  const handled: string[] = [];
  const handler: Handler = (req, res) => {
    handled.push(`${req.method} ${req.url}`);
    work(req);
    req.resume();
    res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
  };
  server = createServer(handler);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  stop = shedWhenBehind(server, { lagMs });
  const [warm] = await sockets(port, 1);
  const warmAnswer = answer(warm);
  warm.write('GET /warm HTTP/1.1\r\nHost: x\r\n\r\n');
  await warmAnswer;
  return { port, handled };
}


describe('shedWhenBehind', () => {
  it('refuses POSTs that arrive while a loop turn has run past lagMs after a late one, with 429 JSON and Retry-After, unread; GETs and the next turn are served', async () => {
    let conns: Socket[] = [];
    let sent = false;
    // Ten requests reach the server in one turn of its loop; each takes 60 ms. The first POST sends
    // the second ten (and a GET): they wait while this turn works. (lagMs is 100, not less, so that
    // a probe tick that a busy machine delays before the test's own load does not count as a
    // lasting lateness: that would take over 110 ms.)
    const { port, handled } = await shedding(100, (req) => {
      if (req.method === 'POST' && !sent) {
        sent = true;
        conns.slice(10, 20).forEach((s, i) => s.write(post(10 + i)));
        conns[20].write('GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n');
      }
      busy(60);
    });
    conns = await sockets(port, 21);
    const answers = conns.map(answer);
    conns.slice(0, 10).forEach((s, i) => s.write(post(i)));
    const got = await Promise.all(answers);
    // One late turn alone (600 ms, ten requests) is served whole.
    expect(got.slice(0, 10).map((a) => a.status)).toEqual(new Array(10).fill(200));
    // The turn after it, late too, serves what fits in lagMs (and the request that crossed it), then refuses the rest.
    const posts = got.slice(10, 20);
    const served = posts.filter((a) => a.status === 200).length;
    const refused = posts.filter((a) => a.status === 429);
    expect(served).toBeGreaterThanOrEqual(1);
    expect(served).toBeLessThanOrEqual(3);
    expect(served + refused.length).toBe(10);
    for (const r of refused) {
      expect(r.headers['retry-after']).toBe('1');
      expect(r.headers['content-type']).toBe('application/json');
      expect(JSON.parse(r.body)).toEqual({ error: 'the server is overloaded; retry shortly' });
    }
    // The refused requests never reached the server's own listener; the GET did.
    expect(handled.filter((h) => h.startsWith('POST'))).toHaveLength(10 + served);
    expect(got[20].status).toBe(200);
    // Once the loop keeps up, POSTs are served again.
    const [next] = await sockets(port, 1);
    const nextAnswer = answer(next);
    next.write(post(99));
    expect((await nextAnswer).status).toBe(200);
  });

  it('refuses a flood within its first late turn, past the requests a hiccup holds', async () => {
    // lagMs 60: a probe tick delayed 70 ms by other work before the flood would make the turn refuse earlier.
    const { port } = await shedding(60, () => busy(15));
    // Sixty requests in one turn, 15 ms each: 900 ms of work.
    const conns = await sockets(port, 60);
    const answers = conns.map(answer);
    conns.forEach((s, i) => s.write(post(i)));
    const statuses = (await Promise.all(answers)).map((a) => a.status);
    const served = statuses.filter((s) => s === 200).length;
    expect(served + statuses.filter((s) => s === 429).length).toBe(60);
    // Served until the turn is late and has taken 16 requests (the warm-up's GET among them), then refused.
    expect(served).toBeGreaterThanOrEqual(12);
    expect(served).toBeLessThanOrEqual(17);
  });

  it('refuses nothing in a turn made late by the process being kept off the CPU, however many requests wait', async () => {
    // The first request holds the thread without using the CPU (as a busy host or a frozen
    // container does); the other fifty-nine, cheap, then find the turn 300 ms late.
    const { port, handled } = await shedding(100, (req) => {
      if (req.url === '/predict?i=0') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
    });
    const conns = await sockets(port, 60);
    const answers = conns.map(answer);
    conns.forEach((s, i) => s.write(post(i)));
    expect((await Promise.all(answers)).map((a) => a.status)).toEqual(new Array(60).fill(200));
    expect(handled.filter((h) => h.startsWith('POST'))).toHaveLength(60);
  });

  it('refuses nothing when the process is kept off the CPU for two turns in a row (a container just thawed on a busy host)', async () => {
    let conns: Socket[] = [];
    let sent = false;
    // Off the CPU for 300 ms in each of two turns: the first POST holds the thread and sends the
    // second ten; the first of those holds it again while the other nine wait.
    const stall = () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
    const { port, handled } = await shedding(100, (req) => {
      if (req.url === '/predict?i=0') {
        sent = true;
        conns.slice(10, 20).forEach((s, i) => s.write(post(10 + i)));
        stall();
      }
      if (req.url === '/predict?i=10') stall();
    });
    conns = await sockets(port, 20);
    const answers = conns.map(answer);
    conns.slice(0, 10).forEach((s, i) => s.write(post(i)));
    expect((await Promise.all(answers)).map((a) => a.status)).toEqual(new Array(20).fill(200));
    expect(sent).toBe(true);
    expect(handled.filter((h) => h.startsWith('POST'))).toHaveLength(20);
  });

  it('refuses nothing when the loop keeps up, and nothing at all with lagMs 0', async () => {
    for (const lagMs of [1000, 0]) {
      const { port } = await shedding(lagMs, () => busy(20));
      const conns = await sockets(port, 6);
      const answers = conns.map(answer);
      conns.forEach((s, i) => s.write(post(i)));
      expect((await Promise.all(answers)).map((a) => a.status)).toEqual(new Array(6).fill(200));
      stop?.();
      server?.closeAllConnections();
      await new Promise((r) => server!.close(r));
      server = undefined;
    }
  });
});
