// The floor, part 2: bare Hono on @hono/node-server doing the same JSON in and out
// (`await c.req.json()`, `c.json(...)`). `node bench/floor/hono.mjs PORT`.
import { serve } from '@hono/node-server';
import { Hono } from 'hono';

const answer = { model_name: 'iris', model_version: '1', outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [1, 3], data: [0.98158467, 0.018415343, 1.4496837e-8] }, { name: 'label', datatype: 'INT64', shape: [1], data: [0] }] };
const app = new Hono();
app.get('/v2/models/iris/ready', (c) => c.json({ ready: true }));
app.post('/v2/models/iris/infer', async (c) => {
  await c.req.json();
  return c.json(answer);
});
serve({ fetch: app.fetch, port: Number(process.argv[2]), hostname: '127.0.0.1' });
