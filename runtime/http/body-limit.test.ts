// The body limit middleware alone, on a bare Hono app.
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { limitBody } from './body-limit.ts';

function app(maxSize: number) {
  const a = new Hono();
  a.use(limitBody({ maxSize, onError: (c) => c.json({ error: 'too large' }, 413) }));
  a.all('/echo', async (c) => c.text(c.req.method === 'GET' ? 'ok' : String((await c.req.arrayBuffer()).byteLength)));
  return a;
}

/** A body sent chunked: no Content-Length, so only its streamed size can tell. */
function chunked(bytes: number): RequestInit {
  const body = new ReadableStream({
    start(controller) {
      for (let sent = 0; sent < bytes; sent += 100) controller.enqueue(new Uint8Array(Math.min(100, bytes - sent)));
      controller.close();
    },
  });
  return { method: 'POST', body, duplex: 'half' } as RequestInit;
}

describe('limitBody', () => {
  it('passes bodies up to the limit, declared or chunked', async () => {
    const a = app(1000);
    const declared = await a.request('/echo', { method: 'POST', body: new Uint8Array(1000), headers: { 'Content-Length': '1000' } });
    expect([declared.status, await declared.text()]).toEqual([200, '1000']);
    const streamed = await a.request('/echo', chunked(1000));
    expect([streamed.status, await streamed.text()]).toEqual([200, '1000']);
  });

  it('refuses a larger declared Content-Length from the header alone, and a larger chunked body while it streams', async () => {
    const a = app(1000);
    const declared = await a.request('/echo', { method: 'POST', body: new Uint8Array(1001), headers: { 'Content-Length': '1001' } });
    expect(declared.status).toBe(413);
    expect(await declared.json()).toEqual({ error: 'too large' });
    const streamed = await a.request('/echo', chunked(5000));
    expect(streamed.status).toBe(413);
  });

  it('lets requests without a body through untouched', async () => {
    const res = await app(0).request('/echo');
    expect([res.status, await res.text()]).toEqual([200, 'ok']);
  });
});
