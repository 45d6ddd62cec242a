/**
 * The gateway (its own nginx image, from the generated config) in front of the real activator
 * and of stand-in function replicas on loopback addresses, with an engine faked in process: which
 * function a request reaches and which one it wakes, for paths written to confuse two parsers
 * (dot-segments, backslashes, percent-encoded dots and slashes); and nginx's own answers (limits,
 * malformed requests, a function that is down) as JSON that says nothing internal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nginxConfig } from '../builder/render/nginx.ts';
import { GATEWAY_IN_FLIGHT_PER_REPLICA, scaledUnits, serviceName } from '../builder/policy.ts';
import { chooseVersion } from '../runtime/function/traffic.ts';
import { resolveDeclaration } from '../runtime/function/check.ts';
import type { ResolvedFunction } from '../runtime/function/define.ts';
import { Activator } from '../runtime/activator/activator.ts';
import { activatorApp } from '../runtime/activator/app.ts';
import { scaledSpec } from '../builder/render/compose.ts';
import { createActivatorMetrics } from '../runtime/activator/metrics.ts';
import type { Replica, ReplicaState, Scope } from '../runtime/activator/scope.ts';
import { memoryLogger } from '../runtime/testing/index.ts';
import { freePort } from './docker.ts';
import { nginxImage, startNginx, type LocalNginx } from './nginx.ts';

const image = nginxImage('the gateway in front of the activator (test/gateway-activator.test.ts)');

/** Each function's (each version's service's) replica on its own loopback address, as containers have theirs; the activator on another. */
const ADDRESS: Record<string, string> = {
  iris: '127.0.0.2', vad: '127.0.0.3', digits: '127.0.0.4', huge: '127.0.0.6', stuck: '127.0.0.7', slow: '127.0.0.8', 'flowers-v1': '127.0.0.9', 'flowers-v2': '127.0.0.10',
};
const ACTIVATOR_ADDRESS = '127.0.0.5';

interface Receipt { fn: string; url: string; header: string | undefined; requestId: string | undefined }

/** A raw HTTP/1.1 exchange: the request's bytes exactly as written, the answer's status, headers and body. */
function rawRequest(url: string, head: string, body: Buffer | string = ''): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((done, fail) => {
    // Written without closing our side: nginx takes a client's end of input for it going away.
    const socket = connect(Number(port), hostname, () => socket.write(Buffer.concat([Buffer.from(head), Buffer.from(body)])));
    const chunks: Buffer[] = [];
    // Done once the answer's body is in (nginx may linger before it closes).
    const parse = (final: boolean) => {
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return final ? fail(new Error(`no answer: ${text}`)) : undefined;
      const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const body = text.slice(end + 4);
      if (!final && body.length < Number(headers['content-length'] ?? Infinity)) return undefined;
      socket.destroy();
      done({ status: Number(statusLine.split(' ')[1]), headers, body });
    };
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      parse(false);
    });
    socket.on('error', fail);
    socket.on('end', () => parse(true));
  });
}

describe.runIf(image)('the gateway and the activator: nginx says which function', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'modelfn-gateway-activator-'));
  const receipts: Receipt[] = [];
  const wakes: string[] = [];
  const running = new Map<string, Server[]>();
  let functionPort = 0;
  let controlPort = 0;
  let gateway: LocalNginx;
  let activatorServer: Server;
  let activator: Activator;
  let unaccepting: ChildProcess | undefined;
  let silent: Server | undefined;
  const held: Socket[] = [];

  const listen = (server: Server, host: string, port: number) => new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => done());
  });

  /** A function's stand-in replica: it says who it is and records what it was sent; its control server says it is ready. */
  async function startReplica(fn: string): Promise<void> {
    if (running.has(fn)) return;
    const app = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      req.on('end', () => {
        receipts.push({ fn, url: req.url ?? '', header: req.headers['x-modelfn-function'] as string | undefined, requestId: req.headers['x-request-id'] as string | undefined });
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ fn, url: req.url }));
      });
    });
    const control = createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({
        ready: true, listening: true, in_flight: 0, requests: 0, idle_ms: 0, startup: { process_ms: 0, model_load_ms: 0, warm_up_ms: 0 }, wakes: 0,
      }));
    });
    await listen(app, ADDRESS[fn], functionPort);
    await listen(control, ADDRESS[fn], controlPort);
    running.set(fn, [app, control]);
  }

  async function stopReplicas(): Promise<void> {
    for (const servers of running.values()) {
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise((done) => s.close(done));
      }
    }
    running.clear();
  }

  /** The engine, faked: one replica a function, started (and counted as woken) on request. */
  const replica = (fn: string): Replica => ({ id: `${fn}-1`, name: `${fn}-1`, service: fn, number: 1, state: running.has(fn) ? 'running' : 'exited', ip: running.has(fn) ? ADDRESS[fn] : undefined, added: false });
  const scope: Scope = {
    project: 'test',
    replicas: async (fn) => [replica(fn)],
    start: async (r) => {
      wakes.push(r.service);
      await startReplica(r.service);
      return replica(r.service);
    },
    state: async (r): Promise<ReplicaState> => ({ id: r.id, status: running.has(r.service) ? 'running' : 'exited', exitCode: 0, error: '', ip: running.has(r.service) ? ADDRESS[r.service] : undefined }),
    stop: async () => {},
    pause: async () => {},
    unpause: async () => {},
    remove: async () => {},
    logs: async () => '',
    clone: async () => {
      throw new Error('not here');
    },
  };

  const declare = (name: string, declaration: object, versions?: string[]): ResolvedFunction => ({
    ...resolveDeclaration(declaration, { dir: `/nowhere/${name}`, folderName: name, versions: versions?.map((version) => ({ version, modelFile: `${version}/model.onnx`, docs: {} })) }, { bodyLimit: 10 * 1024 * 1024, timeoutMs: 5000 } as never),
    ownRoutes: [],
  }) as ResolvedFunction;
  /** flowers: version 1 scales (asleep until asked for), version 2 does not; the split between them. */
  const FLOWERS_SPLIT = [{ version: '1', percent: 50 }, { version: '2', percent: 50 }];

  beforeAll(async () => {
    functionPort = await freePort();
    controlPort = await freePort();
    const functions = [
      declare('iris', { scale: { min: 0, idleSeconds: 60 } }),
      declare('vad', { scale: { min: 0, idleSeconds: 60 } }),
      declare('digits', {}),
      // One large body at a time at most (its limit is over half the large bodies' space).
      declare('huge', { scale: { min: 0, idleSeconds: 60 }, limits: { bodySize: '100mb' } }),
      // Not scaled: a replica whose address takes no connection, and one that takes requests and never answers.
      declare('stuck', {}),
      declare('slow', { limits: { timeoutMs: 500 } }),
      declare('flowers', { traffic: { '1': 50, '2': 50 }, versions: { '1': { scale: { min: 0, idleSeconds: 60 } } } }, ['1', '2']),
    ];
    activator = new Activator({
      scope, functions: scaledUnits(functions).map(scaledSpec), metrics: createActivatorMetrics(), logger: memoryLogger(),
      functionPort, controlPort, wakeTimeoutMs: 5000, failureCooldownMs: 1000, stopDelayMs: 0, tickMs: 100_000, scaleUpTicks: 3, scaleDownTicks: 5,
      budgetBytes: 64 * 1024 * 1024,
      endpointOf: (r, port) => (running.has(r.service) ? `http://${ADDRESS[r.service]}:${port}` : undefined),
    });
    const app = activatorApp(activator, { metrics: createActivatorMetrics(), logger: memoryLogger() });
    activatorServer = await new Promise<Server>((done) => {
      const s = serve({ fetch: app.fetch, port: functionPort, hostname: ACTIVATOR_ADDRESS }, () => done(s as Server)) as Server;
    });
    const conf = nginxConfig(functions, { mode: 'vip', functionPort, serviceHost: (fn) => ADDRESS[serviceName(fn)], activator: ACTIVATOR_ADDRESS })
      .replace('pid /tmp/nginx.pid;', 'pid /tmp/nginx.pid;');
    gateway = await startNginx(image!, conf, '<!doctype html><title>test</title>', join(scratch, 'nginx'));
  }, 60_000);

  afterAll(async () => {
    unaccepting?.kill('SIGKILL');
    for (const s of held) s.destroy();
    silent?.closeAllConnections();
    silent?.close();
    await gateway?.stop();
    await stopReplicas();
    activatorServer?.closeAllConnections();
    await new Promise((done) => activatorServer?.close(done));
    rmSync(scratch, { recursive: true, force: true });
  });

  /**
   * What nginx's access log says of each request: the function it routed it to. nginx writes its
   * log every second: this waits until every one of `ids` is in it (at most 10 s).
   */
  async function routedBy(ids: string[]): Promise<Map<string, string>> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const routed = new Map<string, string>();
      for (const line of gateway.log().split('\n')) {
        if (!line.startsWith('{')) continue;
        const entry = JSON.parse(line) as { request_id: string; fn: string };
        routed.set(entry.request_id, entry.fn);
      }
      if (ids.every((id) => routed.has(id)) || Date.now() > deadline) return routed;
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  it('a request routed to one function wakes and reaches that function only, whatever its path says', async () => {
    const paths = [
      '/iris/predict',
      '/iris/../vad/predict',
      '/iris/%2e%2e/vad/predict',
      '/iris/%2E%2E%2Fvad/predict',
      '/iris/..%2fvad/predict',
      '/iris\\..\\vad/predict',
      '/iris/..\\vad/predict',
      '/iris/\\..\\..\\vad/predict',
      '/iris/%5c..%5c..%5cvad/predict',
      '/iris/..%5c..%5cvad/predict',
      '/iris//..//..//vad/predict',
      '/v2/models/iris/../../vad/infer',
      '/v2/models/iris/%2e%2e/%2e%2e/vad/infer',
      '/v2/models/iris%2f..%2f..%2fvad/infer',
      '/vad/../iris/predict',
      '/vad/%2e%2e/iris/stats?x=/../vad/',
      '/iris/_activate/vad/vad/predict',
    ];
    const answers: { id: string; path: string; status: number; woke: string[] }[] = [];
    for (const [i, path] of paths.entries()) {
      await stopReplicas();
      const id = `path-${i}`;
      const before = wakes.length;
      // The client names another function in the header nginx sets: it is replaced.
      const res = await rawRequest(gateway.url, `POST ${path} HTTP/1.1\r\nHost: test\r\nX-Request-Id: ${id}\r\nX-Modelfn-Function: vad\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n`, '{}');
      answers.push({ id, path, status: res.status, woke: wakes.slice(before) });
    }
    process.stdout.write(`\n[figures] paths through nginx: ${answers.map((a) => `${a.path} -> ${a.status} ${a.woke.join(',') || '-'}`).join('; ')}\n`);
    const routed = await routedBy(answers.filter((a) => a.status !== 400).map((a) => a.id));
    const seen = new Set<string>();
    for (const { id, path, status, woke } of answers) {
      const fn = routed.get(id);
      // A path above the root is refused before nginx reads the headers (the request id among them).
      if (status !== 400) expect(fn, `${path}: not in nginx's log`).toBeDefined();
      const reached = receipts.filter((r) => r.requestId === id);
      if (fn) {
        seen.add(fn);
        expect(status, path).toBe(200);
        // Woken and reached: the function nginx routed it to, named by nginx, never the client.
        expect(woke, path).toEqual([fn]);
        expect(reached.map((r) => r.fn), path).toEqual([fn]);
        // The activator does not pass its header on; nginx's own, on a direct route, names the function.
        expect([undefined, fn], path).toContain(reached[0].header);
      } else {
        expect(woke, path).toEqual([]);
        expect(reached, path).toEqual([]);
      }
    }
    // Both ways were tried: paths that nginx took to vad, and paths (backslashes) that stayed on iris.
    expect([...seen].sort()).toEqual(['iris', 'vad']);
    expect(answers.filter((a) => /\\|%5c/i.test(a.path) && routed.get(a.id) === 'iris').length).toBeGreaterThan(2);
  });

  it('replaces the header a client sent for an awake function too', async () => {
    await startReplica('digits');
    const res = await fetch(`${gateway.url}/digits/predict`, { method: 'POST', body: '{}', headers: { 'X-Modelfn-Function': 'iris', 'X-Request-Id': 'header-digits' } });
    expect(res.status).toBe(200);
    expect(receipts.filter((r) => r.requestId === 'header-digits').map((r) => [r.fn, r.header])).toEqual([['digits', 'digits']]);
  });

  it('refuses a large body over its count with 503 JSON and Retry-After at once, without waking the function', async () => {
    await stopReplicas();
    const before = wakes.length;
    // One body of the huge function's class on its way (sent slowly), then a second.
    const { hostname, port } = new URL(gateway.url);
    const slow = connect(Number(port), hostname);
    await new Promise((r) => slow.once('connect', r));
    slow.write('POST /huge/predict HTTP/1.1\r\nHost: test\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n');
    slow.write(Buffer.alloc(100_000));
    await new Promise((r) => setTimeout(r, 300));
    const res = await rawRequest(gateway.url, 'POST /huge/predict HTTP/1.1\r\nHost: test\r\nX-Request-Id: busy-1\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n', Buffer.alloc(2_000_000));
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['x-request-id']).toBe('busy-1');
    expect(JSON.parse(res.body)).toEqual({ error: "the gateway holds as many requests for 'huge' as it may at once (in flight, or bodies of this size); retry shortly" });
    expect(wakes.slice(before)).toEqual([]);
    // Small bodies of the same function are not held up by it.
    const small = await fetch(`${gateway.url}/huge/predict`, { method: 'POST', body: '{}' });
    expect(small.status).toBe(200);
    slow.destroy();
  });

  it('refuses requests beyond a function\'s in-flight count with 503 JSON and Retry-After at once, and serves again once they end', async () => {
    await startReplica('digits');
    await startReplica('vad');
    const { hostname, port } = new URL(gateway.url);
    // digits runs one replica: GATEWAY_IN_FLIGHT_PER_REPLICA requests whose bodies are on their way hold every place.
    const held = await Promise.all(Array.from({ length: GATEWAY_IN_FLIGHT_PER_REPLICA }, async () => {
      const s = connect(Number(port), hostname);
      await new Promise((r) => s.once('connect', r));
      s.on('error', () => {});
      s.write('POST /digits/predict HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\n{');
      return s;
    }));
    await new Promise((r) => setTimeout(r, 300));
    const started = performance.now();
    const res = await rawRequest(gateway.url, 'POST /digits/predict HTTP/1.1\r\nHost: test\r\nX-Request-Id: in-flight-1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n', Buffer.from('{}'));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.headers['x-request-id']).toBe('in-flight-1');
    expect(JSON.parse(res.body)).toEqual({ error: "the gateway holds as many requests for 'digits' as it may at once (in flight, or bodies of this size); retry shortly" });
    // Another function is not held up by it.
    expect((await fetch(`${gateway.url}/vad/predict`, { method: 'POST', body: '{}' })).status).toBe(200);
    for (const s of held) s.destroy();
    await new Promise((r) => setTimeout(r, 300));
    expect((await fetch(`${gateway.url}/digits/predict`, { method: 'POST', body: '{}' })).status).toBe(200);
  });

  it("answers nginx's own errors as JSON without internals", async () => {
    const expectJson = (res: { status: number; headers: Record<string, string>; body: string }, status: number, retry = false) => {
      expect(res.status).toBe(status);
      expect(res.headers['content-type']).toBe('application/json');
      expect(res.body).not.toMatch(/nginx|<html|127\.0\.0|upstream/i);
      expect(JSON.parse(res.body)).toEqual({ error: expect.any(String) });
      if (retry) expect(res.headers['retry-after']).toBe('1');
    };
    expectJson(await rawRequest(gateway.url, 'GET /iris/predict HTTP/1.1\r\nHost: test\r\nX-Big: ' + 'a'.repeat(20_000) + '\r\nConnection: close\r\n\r\n'), 431);
    expectJson(await rawRequest(gateway.url, `GET /iris/${'a'.repeat(70_000)} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n`), 414);
    expectJson(await rawRequest(gateway.url, 'POST /iris/predict HTTP/1.1\r\nHost: test\r\nContent-Length: 20000000\r\nConnection: close\r\n\r\n'), 413);
    expectJson(await rawRequest(gateway.url, 'POST /iris/predict HTTP/1.1\r\nHost: test\r\nContent-Length: nope\r\nConnection: close\r\n\r\n'), 400);
    expectJson(await rawRequest(gateway.url, 'GET /iris/predict HTTP/1.1\r\nConnection: close\r\n\r\n'), 400);
    // A function that is not answering (not one that scales): 503 JSON with Retry-After.
    await stopReplicas();
    expectJson(await rawRequest(gateway.url, 'GET /digits/predict HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n'), 503, true);
  });

  it('answers 503 (unavailable, Retry-After) for a function whose replica takes no connection, and 504 for one that takes the request and never answers', async () => {
    // A crashed replica's address outliving it: a listener whose process never accepts, its
    // backlog filled, so connecting to it times out (no refusal, as on a dead host).
    unaccepting = spawn(process.execPath, ['-e', `
      require('node:net').createServer().listen({ host: '${ADDRESS.stuck}', port: ${functionPort}, backlog: 1 }, () => {
        process.stdout.write('listening\\n');
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
      });`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((done, fail) => {
      unaccepting!.stdout!.once('data', () => done());
      unaccepting!.once('exit', (code) => fail(new Error(`the listener exited with ${code}`)));
    });
    for (let i = 0; i < 4; i++) held.push(connect(functionPort, ADDRESS.stuck).on('error', () => {}));
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    const stuck = await fetch(`${gateway.url}/stuck/predict`, { method: 'POST', body: '{}' });
    expect(stuck.status).toBe(503);
    expect(stuck.headers.get('retry-after')).toBe('1');
    expect(await stuck.json()).toEqual({ error: "function 'stuck' is unavailable: no replica is answering" });
    // It waited for the connection (proxy_connect_timeout), not for an answer.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);

    silent = createServer(() => {});
    await listen(silent, ADDRESS.slow, functionPort);
    const slow = await fetch(`${gateway.url}/slow/predict`, { method: 'POST', body: '{}' });
    expect(slow.status).toBe(504);
    expect(slow.headers.get('retry-after')).toBeNull();
    expect(await slow.json()).toEqual({ error: 'the function did not answer in time' });
  }, 30_000);

  it("wakes a version that scales on its own, named by its service, and answers a version that does not as unavailable", async () => {
    await stopReplicas();
    // Its versioned path: version 1's service woken and reached, the gateway naming it.
    const before = wakes.length;
    const v1 = await fetch(`${gateway.url}/v2/models/flowers/versions/1/infer`, { method: 'POST', body: '{}', headers: { 'X-Request-Id': 'flowers-v1-path' } });
    expect(v1.status).toBe(200);
    expect(wakes.slice(before)).toEqual(['flowers-v1']);
    expect(receipts.filter((r) => r.requestId === 'flowers-v1-path').map((r) => r.fn)).toEqual(['flowers-v1']);
    // Through the split, by traffic key: a key on version 1 reaches it; one on version 2 (down, not scaling) is unavailable, waking nothing.
    const keys = Array.from({ length: 40 }, (_, i) => `user-${i}`);
    const onV1 = keys.find((k) => chooseVersion(FLOWERS_SPLIT, k) === '1')!;
    const onV2 = keys.find((k) => chooseVersion(FLOWERS_SPLIT, k) === '2')!;
    const split1 = await fetch(`${gateway.url}/flowers/predict`, { method: 'POST', body: '{}', headers: { 'X-Modelfn-Traffic-Key': onV1, 'X-Request-Id': 'flowers-split-1' } });
    expect(split1.status).toBe(200);
    expect(receipts.filter((r) => r.requestId === 'flowers-split-1').map((r) => [r.fn, r.header])).toEqual([['flowers-v1', 'flowers-v1']]);
    const woken = wakes.length;
    const split2 = await fetch(`${gateway.url}/flowers/predict`, { method: 'POST', body: '{}', headers: { 'X-Modelfn-Traffic-Key': onV2 } });
    expect(split2.status).toBe(503);
    expect(split2.headers.get('retry-after')).toBe('1');
    expect(await split2.json()).toEqual({ error: "function 'flowers' is unavailable: no replica is answering" });
    expect(wakes.length).toBe(woken);
    // Version 2 up: its requests reach it, the header naming its service.
    await startReplica('flowers-v2');
    const up = await fetch(`${gateway.url}/flowers/predict`, { method: 'POST', body: '{}', headers: { 'X-Modelfn-Traffic-Key': onV2, 'X-Request-Id': 'flowers-split-2' } });
    expect(up.status).toBe(200);
    expect(receipts.filter((r) => r.requestId === 'flowers-split-2').map((r) => [r.fn, r.header])).toEqual([['flowers-v2', 'flowers-v2']]);
  });
});
