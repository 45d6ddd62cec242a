import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { shedWhenBehind } from './shed.ts';

/** Busy for `ms` on the event loop, as a server whose HTTP work outruns it is. */
const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

/** A server whose every request keeps the loop busy for `workMs`, answering 200 `{"ok":true}`. */
async function slowServer(workMs: number): Promise<{ server: Server; port: number; handled: string[] }> {
  const handled: string[] = [];
  const server = createServer((req, res) => {
    handled.push(`${req.method} ${req.url}`);
    busy(workMs);
    req.resume();
    res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, handled };
}

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

describe('shedWhenBehind', () => {
  it('refuses POSTs that arrive while a loop turn has run past lagMs with 429 JSON and Retry-After, unread; GETs and the next turn are served', async () => {
    const slow = await slowServer(30);
    server = slow.server;
    stop = shedWhenBehind(server, { lagMs: 50 });
    // Ten requests reach the server in one turn of its loop; each takes 30 ms to serve.
    const conns = await sockets(slow.port, 11);
    const answers = conns.map(answer);
    conns.slice(0, 10).forEach((s, i) => s.write(post(i)));
    conns[10].write('GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n');
    const got = await Promise.all(answers);
    const posts = got.slice(0, 10);
    const served = posts.filter((a) => a.status === 200).length;
    const refused = posts.filter((a) => a.status === 429);
    // The turn serves what fits in lagMs (and the request that crossed it), then refuses the rest.
    expect(served).toBeGreaterThanOrEqual(1);
    expect(served).toBeLessThanOrEqual(3);
    expect(served + refused.length).toBe(10);
    for (const r of refused) {
      expect(r.headers['retry-after']).toBe('1');
      expect(r.headers['content-type']).toBe('application/json');
      expect(JSON.parse(r.body)).toEqual({ error: 'the server is overloaded; retry shortly' });
    }
    // The refused requests never reached the server's own listener; the GET did.
    expect(slow.handled.filter((h) => h.startsWith('POST'))).toHaveLength(served);
    expect(got[10].status).toBe(200);
    // Once the loop keeps up, POSTs are served again.
    const [next] = await sockets(slow.port, 1);
    const nextAnswer = answer(next);
    next.write(post(99));
    expect((await nextAnswer).status).toBe(200);
  });

  it('refuses nothing when the loop keeps up, and nothing at all with lagMs 0', async () => {
    for (const lagMs of [1000, 0]) {
      const slow = await slowServer(20);
      server = slow.server;
      stop = shedWhenBehind(server, { lagMs });
      const conns = await sockets(slow.port, 6);
      const answers = conns.map(answer);
      conns.forEach((s, i) => s.write(post(i)));
      expect((await Promise.all(answers)).map((a) => a.status)).toEqual(new Array(6).fill(200));
      stop();
      server.closeAllConnections();
      await new Promise((r) => server!.close(r));
      server = undefined;
    }
  });
});
