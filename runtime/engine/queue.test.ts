import ort from 'onnxruntime-node';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ModelQueue, NEWEST_FIRST_AFTER_MS, RequestLife, canBatch, setDeadline, type QueueOptions, type Runner } from './queue.ts';
import { ModelfnError } from '../core/errors.ts';
import type { Feeds, Fetches } from '../tensor/types.ts';
import { ROOT, openDeclared, openFunctionDir, postJson } from '../testing/index.ts';

const rowsOf = (values: number[][]) => ({ x: new ort.Tensor('float32', Float32Array.from(values.flat()), [values.length, values[0].length]) });

/** A runner that doubles its input, recording each call's rows; the fake stands in for onnxruntime. */
function doubler(delayMs = 20) {
  const calls: number[] = [];
  const runner = async (feeds: Feeds): Promise<Fetches> => {
    calls.push(feeds.x.dims[0]);
    await new Promise((r) => setTimeout(r, delayMs));
    const data = (feeds.x.data as Float32Array).map((v) => v * 2);
    if (data.some((v) => Number.isNaN(v))) throw new Error('NaN input');
    return { y: new ort.Tensor('float32', data, feeds.x.dims) };
  };
  return { calls, runner };
}

const options = { batching: true, maxBatchSize: 8, maxDelayMs: 5, maxQueue: 4 };

describe('ModelQueue, batching', () => {
  // Where a test is about time (delays, waits), it runs on the fake clock: the same on any machine.
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs a lone request on an idle model at once, without waiting for the delay', async () => {
    vi.useFakeTimers();
    const { calls, runner } = doubler(0);
    const queue = new ModelQueue(runner, ['y'], { ...options, maxDelayMs: 5000 });
    const started = performance.now();
    const answer = queue.run(rowsOf([[1, 2]]));
    // The run's own zero-length step is the only time that passes: no 5 s wait for company.
    await vi.advanceTimersByTimeAsync(0);
    const out = await answer;
    expect(performance.now() - started).toBe(0);
    expect(Array.from(out.y.data as Float32Array)).toEqual([2, 4]);
    expect(calls).toEqual([1]);
  });

  it('joins requests that arrive while a batch runs, and splits the answer back per request', async () => {
    const { calls, runner } = doubler(30);
    const queue = new ModelQueue(runner, ['y'], { ...options, maxQueue: 100 });
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => queue.run(rowsOf(Array.from({ length: i }, (_, r) => [i, r])))));
    // The first runs alone; the other four (14 rows) queue meanwhile and run as batches of at most 8 rows.
    expect(calls[0]).toBe(1);
    expect(calls.slice(1).every((n) => n <= 8)).toBe(true);
    expect(calls.reduce((a, b) => a + b, 0)).toBe(15);
    expect(calls.length).toBeLessThan(5);
    results.forEach((out, idx) => {
      const i = idx + 1;
      expect(out.y.dims).toEqual([i, 2]);
      expect(Array.from(out.y.data as Float32Array)).toEqual(Array.from({ length: i }, (_, r) => [2 * i, 2 * r]).flat());
    });
  });

  it("hands its own joined tensors to the runner to move, and a lone request's only if its caller gave them up", async () => {
    const flags: [number, boolean][] = [];
    const runner = async (feeds: Feeds, _outputs: readonly string[], transfer: boolean): Promise<Fetches> => {
      flags.push([feeds.x.dims[0], transfer]);
      await new Promise((r) => setTimeout(r, 20));
      return { y: feeds.x };
    };
    const queue = new ModelQueue(runner, ['y'], { ...options, maxQueue: 10 });
    const idle = () => new Promise((r) => setTimeout(r, 5));
    await queue.run(rowsOf([[1, 1]]), undefined, false);
    await idle();
    await queue.run(rowsOf([[1, 1]]), undefined, true);
    await idle();
    await Promise.all([queue.run(rowsOf([[1, 1]])), queue.run(rowsOf([[2, 2]])), queue.run(rowsOf([[3, 3]]))]);
    expect(flags).toEqual([[1, false], [1, true], [1, false], [2, true]]);
  });

  it('refuses beyond the queue bound as overloaded, with a retry hint', async () => {
    const { runner } = doubler(50);
    const queue = new ModelQueue(runner, ['y'], { ...options, maxQueue: 2 });
    const settled = await Promise.allSettled([0, 1, 2, 3, 4].map(() => queue.run(rowsOf([[1, 1]]))));
    const refused = settled.filter((s) => s.status === 'rejected').map((s) => (s as PromiseRejectedResult).reason as ModelfnError);
    expect(refused).toHaveLength(2);
    expect(refused[0].kind).toBe('overloaded');
    expect(refused[0].options.retryAfterSeconds).toBe(1);
    expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(3);
  });

  it('does not let one bad request fail the others in its batch', async () => {
    const { runner } = doubler(20);
    const queue = new ModelQueue(runner, ['y'], { ...options, maxQueue: 10 });
    const settled = await Promise.allSettled([[[1, 1]], [[2, 2]], [[NaN, 3]], [[4, 4]]].map((v) => queue.run(rowsOf(v))));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(Array.from((settled[3] as PromiseFulfilledResult<Fetches>).value.y.data as Float32Array)).toEqual([8, 8]);
  });

  it('drops requests whose deadline passed while queued, before they reach the runner', async () => {
    const gate = gated();
    const queue = new ModelQueue(gate.runner, ['y'], options);
    const first = queue.run(rowsOf([[1, 1]]));
    const late = queue.run(rowsOf([[2, 2]]), undefined, false, { deadline: Date.now() + 30 });
    await new Promise((r) => setTimeout(r, 60));
    gate.open();
    await first;
    await expect(late).rejects.toMatchObject({ kind: 'deadline_exceeded' });
    expect(gate.calls).toEqual([1]);
  });

  it('makes larger batches under load with a larger maxDelayMs, each request waiting at most that much longer', async () => {
    vi.useFakeTimers();
    // A steady stream on the fake clock: a request every 2 ms, runs of a fixed 8 ms whatever their size.
    async function stream(maxDelayMs: number) {
      const calls: number[] = [];
      const runner = async (feeds: Feeds): Promise<Fetches> => {
        calls.push(feeds.x.dims[0]);
        await new Promise((r) => setTimeout(r, 8));
        return { y: feeds.x };
      };
      const queue = new ModelQueue(runner, ['y'], { batching: true, maxBatchSize: 64, maxDelayMs, maxQueue: 1000 });
      const latencies: number[] = [];
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < 60; i++) {
        const sent = performance.now();
        pending.push(queue.run(rowsOf([[i, i]])).then(() => latencies.push(performance.now() - sent)));
        await vi.advanceTimersByTimeAsync(2);
      }
      await vi.runAllTimersAsync();
      await Promise.all(pending);
      return { meanBatch: calls.reduce((a, b) => a + b, 0) / calls.length, worst: Math.max(...latencies) };
    }
    const eager = await stream(0);
    const patient = await stream(40);
    expect(patient.meanBatch).toBeGreaterThan(eager.meanBatch * 1.5);
    // Bounded: the delay, plus one run of its own and one it may have queued behind.
    expect(patient.worst).toBeLessThanOrEqual(40 + 2 * 8);
    expect(patient.worst).toBeLessThanOrEqual(eager.worst + 40);
  });

  it('waits at most maxDelayMs for company when a second batch may run alongside', async () => {
    vi.useFakeTimers();
    const { calls, runner } = doubler(200);
    const queue = new ModelQueue(runner, ['y'], { ...options, maxDelayMs: 40, maxInFlight: 2, maxQueue: 10 });
    const first = queue.run(rowsOf([[1, 1]]));
    const second = queue.run(rowsOf([[2, 2]]));
    // Within the delay, the third joins the second; past it, the second has gone alone.
    await vi.advanceTimersByTimeAsync(10);
    const third = queue.run(rowsOf([[3, 3]]));
    await vi.advanceTimersByTimeAsync(40);
    const fourth = queue.run(rowsOf([[4, 4]]));
    await vi.runAllTimersAsync();
    await Promise.all([first, second, third, fourth]);
    expect(calls).toEqual([1, 2, 1]);
  });
});

/** A runner that holds every run until `open()`: tests wait on events, not on the clock. */
function gated() {
  const calls: number[] = [];
  let release!: () => void;
  let opened = new Promise<void>((r) => { release = r; });
  const runner: Runner = async (feeds) => {
    calls.push(feeds.x.dims[0]);
    await opened;
    return { y: feeds.x };
  };
  return {
    calls,
    runner,
    open: () => release(),
    close: () => { opened = new Promise<void>((r) => { release = r; }); },
  };
}

describe('ModelQueue, admission and deadlines', () => {
  const solo = { batching: false, maxBatchSize: 8, maxDelayMs: 5, maxQueue: 3 };

  /**
   * A queue whose model is held shut, once it has learnt that a run takes about `runMs` (a real
   * timer: on a busy machine it fires late, so the run learnt is `runMs` or somewhat more).
   */
  async function taught(options: QueueOptions, runMs = 50): Promise<{ gate: ReturnType<typeof gated>; queue: ModelQueue }> {
    const gate = gated();
    const queue = new ModelQueue(gate.runner, ['y'], options);
    const first = queue.run(rowsOf([[1, 1]]));
    await new Promise((r) => setTimeout(r, runMs));
    gate.open();
    await first;
    // The run's duration is recorded once its slot is free again.
    await new Promise((r) => setTimeout(r, 0));
    gate.close();
    return { gate, queue };
  }

  it('bounds the queue of a model that cannot batch: one run at a time, the rest wait, beyond maxQueue refused at once', async () => {
    const gate = gated();
    const queue = new ModelQueue(gate.runner, ['y'], solo);
    const runs = [0, 1, 2, 3].map(() => queue.run(rowsOf([[1, 1]])));
    // One runs, three wait: the queue is full.
    expect(gate.calls).toEqual([1]);
    expect(queue.depth).toBe(3);
    await expect(queue.run(rowsOf([[5, 5]]))).rejects.toMatchObject({ kind: 'overloaded' });
    gate.open();
    await Promise.all(runs);
    expect(gate.calls).toEqual([1, 1, 1, 1]);
  });

  it('counts a large request by its rows, and runs it on its own in its turn', async () => {
    const gate = gated();
    const queue = new ModelQueue(gate.runner, ['y'], { ...options, maxQueue: 20 });
    const busy = queue.run(rowsOf([[0, 0]]));
    const big = Array.from({ length: 16 }, (_, i) => [i, i]);
    const first = queue.run(rowsOf(big));
    // 16 rows wait; another 16 would pass maxQueue (20), a 4-row request still fits.
    await expect(queue.run(rowsOf(big))).rejects.toMatchObject({ kind: 'overloaded' });
    const small = queue.run(rowsOf([[1, 1], [2, 2], [3, 3], [4, 4]]));
    expect(queue.rows).toBe(20);
    gate.open();
    await Promise.all([busy, first, small]);
    expect(gate.calls).toEqual([1, 16, 4]);
  });

  it('takes an aborted request out of the queue at once, with the reason the signal carries; the runner never sees it', async () => {
    const gate = gated();
    const queue = new ModelQueue(gate.runner, ['y'], solo);
    const busy = queue.run(rowsOf([[1, 1]]));
    const controller = new AbortController();
    const left = queue.run(rowsOf([[2, 2], [2, 2]]), undefined, false, { signal: controller.signal });
    expect(queue.depth).toBe(1);
    controller.abort();
    await expect(left).rejects.toMatchObject({ kind: 'cancelled' });
    expect(queue.depth).toBe(0);
    const timedOut = new AbortController();
    const late = queue.run(rowsOf([[3, 3]]), undefined, false, { signal: timedOut.signal });
    timedOut.abort(new ModelfnError('deadline_exceeded', 'out of time'));
    await expect(late).rejects.toMatchObject({ kind: 'deadline_exceeded', message: 'out of time' });
    gate.open();
    await busy;
    expect(gate.calls).toEqual([1]);
  });

  it("refuses a request whose signal already fired, and reads a signal's deadline", async () => {
    const gate = gated();
    const queue = new ModelQueue(gate.runner, ['y'], solo);
    const gone = new AbortController();
    gone.abort();
    await expect(queue.run(rowsOf([[1, 1]]), undefined, false, { signal: gone.signal })).rejects.toMatchObject({ kind: 'cancelled' });
    const busy = queue.run(rowsOf([[1, 1]]));
    const soon = new AbortController();
    setDeadline(soon.signal, Date.now() + 30);
    const late = queue.run(rowsOf([[2, 2]]), undefined, false, { signal: soon.signal });
    await new Promise((r) => setTimeout(r, 60));
    gate.open();
    await busy;
    await expect(late).rejects.toMatchObject({ kind: 'deadline_exceeded' });
    expect(gate.calls).toEqual([1]);
  });

  it("drops a queued request when its RequestLife ends, reads its deadline, and gives routes a signal that ends with it", async () => {
    const gate = gated();
    const queue = new ModelQueue(gate.runner, ['y'], solo);
    const busy = queue.run(rowsOf([[1, 1]]));
    const life = new RequestLife(Date.now() + 60_000);
    const early = life.signal;
    const left = queue.run(rowsOf([[2, 2]]), undefined, false, { signal: life });
    const reason = new ModelfnError('cancelled', 'the client closed the connection; its work was dropped');
    life.abort(reason);
    await expect(left).rejects.toBe(reason);
    expect(early.aborted).toBe(true);
    expect(early.reason).toBe(reason);
    // A signal asked for after the end is born aborted, with the same reason.
    expect(life.signal.reason).toBe(reason);
    await expect(queue.run(rowsOf([[3, 3]]), undefined, false, { signal: life })).rejects.toBe(reason);
    const short = new RequestLife(Date.now() + 30);
    const late = queue.run(rowsOf([[4, 4]]), undefined, false, { signal: short });
    await new Promise((r) => setTimeout(r, 60));
    gate.open();
    await busy;
    await expect(late).rejects.toMatchObject({ kind: 'deadline_exceeded' });
    expect(gate.calls).toEqual([1]);
  });

  it('serves the newest requests first once the oldest has waited past NEWEST_FIRST_AFTER_MS (overload), and in order before', async () => {
    const gate = gated();
    const order: number[] = [];
    const runner: Runner = async (feeds, outputs, transfer, deadline) => {
      order.push((feeds.x.data as Float32Array)[0]);
      return gate.runner(feeds, outputs, transfer, deadline);
    };
    const queue = new ModelQueue(runner, ['y'], { ...solo, maxQueue: 10 });
    const busy = queue.run(rowsOf([[0, 0]]));
    const early = [1, 2].map((i) => queue.run(rowsOf([[i, i]])));
    // While the head's wait is short, first come first served.
    gate.open();
    await Promise.all([busy, ...early]);
    expect(order).toEqual([0, 1, 2]);
    gate.close();
    order.length = 0;
    const busyAgain = queue.run(rowsOf([[0, 0]]));
    const waiting = [1, 2, 3].map((i) => queue.run(rowsOf([[i, i]])));
    await new Promise((r) => setTimeout(r, NEWEST_FIRST_AFTER_MS + 20));
    gate.open();
    await Promise.all([busyAgain, ...waiting]);
    // The oldest waited past the limit: the newest ran first.
    expect(order).toEqual([0, 3, 2, 1]);
  });

  it('refuses at once a request the queued work would keep past its deadline', async () => {
    const { gate, queue } = await taught({ ...solo, maxQueue: 100 });
    const busy = queue.run(rowsOf([[1, 1]]));
    const waiting = [1, 2, 3, 4].map(() => queue.run(rowsOf([[1, 1]])));
    // Four runs of ~50 ms are queued: a request with 100 ms left cannot be run in time.
    await expect(queue.run(rowsOf([[1, 1]]), undefined, false, { deadline: Date.now() + 100 })).rejects.toMatchObject({ kind: 'overloaded' });
    // One with time enough waits its turn.
    const patient = queue.run(rowsOf([[1, 1]]), undefined, false, { deadline: Date.now() + 60_000 });
    await expect(queue.run(rowsOf([[1, 1]]), undefined, false, { deadline: Date.now() - 1 })).rejects.toMatchObject({ kind: 'deadline_exceeded' });
    gate.open();
    await Promise.all([busy, ...waiting, patient]);
  });

  it('refuses at once, before the body is read, once the queued work exceeds maxQueueMs; a couple of runs may always wait', async () => {
    // Runs of 200 ms against a bound of 500: two queued stay admitted unless the timer that taught
    // the run's length fired over 50 ms late; three (600 ms or more) are always over it.
    const { gate, queue } = await taught({ ...solo, maxQueue: 100, maxQueueMs: 500 }, 200);
    const busy = queue.run(rowsOf([[1, 1]]));
    // Two runs queued (about 400 ms): still admitted, before and after the body.
    const waiting = [1, 2].map(() => queue.run(rowsOf([[1, 1]])));
    expect(() => queue.checkAdmission()).not.toThrow();
    waiting.push(queue.run(rowsOf([[1, 1]])));
    // Three runs queued (about 600 ms > 500): refused with a retry hint, whatever the deadline.
    let refusal: unknown;
    try {
      queue.checkAdmission();
    } catch (err) {
      refusal = err;
    }
    expect(refusal).toMatchObject({ kind: 'overloaded', options: { retryAfterSeconds: 1 } });
    expect((refusal as Error).message).toMatch(/about \d+ ms of work is queued/);
    await expect(queue.run(rowsOf([[1, 1]]))).rejects.toMatchObject({ kind: 'overloaded' });
    expect(queue.depth).toBe(3);
    gate.open();
    await Promise.all([busy, ...waiting]);
    // Once the queue drained, requests are admitted again.
    expect(() => queue.checkAdmission()).not.toThrow();
    await queue.run(rowsOf([[1, 1]]));
  });

  it('counts queued rows of a model that batches by the batches they form, not by past runs of one row', async () => {
    // Taught by one 200 ms run of one row; 16 lone rows then queue behind a busy run. They join
    // into batches of 8: two runs (about 400 ms) under the 550 ms bound, all admitted. Counted as
    // past runs of one row each, they were 16 runs and all but the first two were refused.
    const { gate, queue } = await taught({ batching: true, maxBatchSize: 8, maxDelayMs: 5, maxQueue: 100, maxQueueMs: 550 }, 200);
    const busy = queue.run(rowsOf([[1, 1]]));
    const burst = Array.from({ length: 16 }, () => queue.run(rowsOf([[1, 1]])));
    expect(queue.depth).toBe(16);
    expect(() => queue.checkAdmission()).not.toThrow();
    // A 17th row makes a third batch (about 600 ms): the request after it is refused.
    burst.push(queue.run(rowsOf([[1, 1]])));
    await expect(queue.run(rowsOf([[1, 1]]))).rejects.toMatchObject({ kind: 'overloaded' });
    gate.open();
    await Promise.all([busy, ...burst]);
  });

  it('admits a couple of runs of a slow model whatever maxQueueMs says', async () => {
    const { gate, queue } = await taught({ ...solo, maxQueue: 100, maxQueueMs: 10 });
    // One run (50 ms) is over the 10 ms bound, but a slow model still queues one behind another.
    const runs = [queue.run(rowsOf([[1, 1]])), queue.run(rowsOf([[1, 1]])), queue.run(rowsOf([[1, 1]]))];
    await expect(queue.run(rowsOf([[1, 1]]))).rejects.toMatchObject({ kind: 'overloaded' });
    gate.open();
    await Promise.all(runs);
  });

  it('passes the latest deadline of a batch to the runner, for the inference thread\'s last check', async () => {
    const deadlines: number[] = [];
    const gate = gated();
    const runner: Runner = async (feeds, outputs, transfer, deadline) => {
      deadlines.push(deadline);
      return gate.runner(feeds, outputs, transfer, deadline);
    };
    const queue = new ModelQueue(runner, ['y'], { ...options, maxQueue: 10 });
    const soon = Date.now() + 60_000;
    const busy = queue.run(rowsOf([[0, 0]]), undefined, false, { deadline: soon });
    const a = queue.run(rowsOf([[1, 1]]), undefined, false, { deadline: soon + 1 });
    const b = queue.run(rowsOf([[2, 2]]), undefined, false, { deadline: soon + 2 });
    gate.open();
    await Promise.all([busy, a, b]);
    expect(gate.calls).toEqual([1, 2]);
    expect(deadlines).toEqual([soon, soon + 2]);
  });
});

describe('batching a real model', () => {
  it('is detected from the metadata: iris has a batch dimension, Silero VAD does not', async () => {
    const iris = await openFunctionDir('functions/iris');
    const vad = await openFunctionDir('functions/vad');
    expect(canBatch(iris.model.inputs, iris.model.outputs)).toBe(true);
    expect(canBatch(vad.model.inputs, vad.model.outputs)).toBe(false);
    // Batching is on by default, and takes effect only where the model allows it.
    expect(iris.model.batching).toBe(true);
    expect(vad.model.batching).toBe(false);
    const off = await openDeclared(resolve(ROOT, 'functions/iris'), { batching: { enabled: false } });
    expect(off.model.batching).toBe(false);
  });

  it('answers concurrent requests exactly as unbatched ones, and exports batch metrics', async () => {
    const plain = await openDeclared(resolve(ROOT, 'functions/iris'), { batching: { enabled: false } });
    const batched = await openDeclared(resolve(ROOT, 'functions/iris'), { batching: { enabled: true, maxBatchSize: 16, maxDelayMs: 5 } });
    expect(batched.model.batching).toBe(true);
    const bodies = Array.from({ length: 48 }, (_, i) => ({ id: `r${i}`, inputs: [{ name: 'input', datatype: 'FP32', shape: [1 + (i % 3), 4], data: new Array(4 * (1 + (i % 3))).fill(0).map((_, j) => ((i + j) % 7) + 0.5) }] }));
    const viaBatch = await Promise.all(bodies.map(async (b) => (await batched.app.request('/v2/models/iris/infer', postJson(b))).json()));
    const alone = await Promise.all(bodies.map(async (b) => (await plain.app.request('/v2/models/iris/infer', postJson(b))).json()));
    expect(viaBatch).toEqual(alone);
    const metrics = await (await batched.app.request('/metrics')).text();
    const count = Number(/modelfn_batch_size_count\{model="iris"\} (\d+)/.exec(metrics)?.[1]);
    const sum = Number(/modelfn_batch_size_sum\{model="iris"\} (\d+)/.exec(metrics)?.[1]);
    expect(sum).toBe(96);
    expect(count).toBeLessThan(48);
    expect(metrics).toMatch(/modelfn_batch_queue_seconds_count\{model="iris"\} 48/);
  });
});
