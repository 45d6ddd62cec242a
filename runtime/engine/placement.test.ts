// Where a model runs with `thread: 'auto'`: real models, real onnxruntime sessions on the main
// thread and on inference threads; and the cost model alone.
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterEach, describe, expect, it } from 'vitest';
import { FIXTURES, ROOT } from '../testing/index.ts';
import { until } from '../testing/helpers.ts';
import { loadModel, type LoadModelOptions, type Model, type Placement } from './model.ts';
import { readOnnxOperators } from './onnx-file.ts';
import { CALIBRATION_ROWS, calibrationFeeds, sizeBoundOperators, elementsOf, estimateMs, fitCost } from './placement.ts';
import { DATATYPES } from '../tensor/datatypes.ts';
import type { TensorSpec } from '../tensor/types.ts';

const IRIS = join(ROOT, 'functions/iris/model.onnx');
const SLOW = join(FIXTURES, 'slow.onnx');

const irisRows = (rows: number) => ({ input: new ort.Tensor('float32', new Float32Array(rows * 4).fill(0.5), [rows, 4]) });

let models: Model[] = [];
afterEach(async () => {
  for (const m of models) await m.release().catch(() => {});
  models = [];
});

async function load(path: string, options: LoadModelOptions = {}): Promise<{ model: Model; moves: Array<[Placement, string]> }> {
  const moves: Array<[Placement, string]> = [];
  const model = await loadModel(path, { thread: 'auto', placementDelayMs: 0, onPlacement: (p, why) => moves.push([p, why]), ...options });
  models.push(model);
  return { model, moves };
}

describe("a model's placement with thread: 'auto'", () => {
  it('moves a small model (iris) to the main thread and ends its thread; its answers are the same', async () => {
    const { model, moves } = await load(IRIS);
    expect(model.placement).toBe('thread');
    const before = await model.run(irisRows(2));
    expect(await model.placed).toBe('main');
    expect(moves).toEqual([['main', expect.stringMatching(/^a run of one row takes 0\.\d{3} ms$/)]]);
    // The thread has nothing left to run: it ends.
    expect(await until(async () => !model.thread!.running)).toBe(true);
    const after = await model.run(irisRows(2));
    expect(Array.from(after.probabilities.data as Float32Array)).toEqual(Array.from(before.probabilities.data as Float32Array));
    expect(Array.from(after.label.data as BigInt64Array)).toEqual(Array.from(before.label.data as BigInt64Array));
    expect(model.thread!.running).toBe(false);
  });

  it('runs a request too large for the main thread on a thread started for it, which ends when idle', async () => {
    const { model } = await load(IRIS, { threadIdleMs: 50 });
    expect(await model.placed).toBe('main');
    await until(async () => !model.thread!.running);
    // A quarter of a million rows: far more than the main thread's budget at any cost per row.
    const rows = 250_000;
    const big = model.run(irisRows(rows));
    expect(await until(async () => model.thread!.running, 2000)).toBe(true);
    const out = await big;
    expect(out.label.dims).toEqual([rows]);
    expect(model.placement).toBe('main');
    expect(await until(async () => !model.thread!.running)).toBe(true);
    // Small requests never needed it.
    expect((await model.run(irisRows(1))).label.dims).toEqual([1]);
    expect(model.thread!.running).toBe(false);
  });

  it('refuses runs once released as unavailable, and starts no thread for them', async () => {
    const { model } = await load(IRIS);
    expect(await model.placed).toBe('main');
    await until(async () => !model.thread!.running);
    await model.release();
    const refused = await model.run(irisRows(1)).catch((err: unknown) => err);
    expect(refused).toMatchObject({ kind: 'unavailable', message: expect.stringMatching(/released/) });
    const big = await model.run(irisRows(250_000)).catch((err: unknown) => err);
    expect(big).toMatchObject({ kind: 'unavailable' });
    expect(model.thread!.running).toBe(false);
  });

  it('keeps a model whose run on the main thread takes longer than the limit on its thread', async () => {
    // A limit no run can meet: iris stays where it started, and its thread serves it.
    const { model, moves } = await load(IRIS, { mainThreadRunMaxMs: 0 });
    expect(await model.placed).toBe('thread');
    expect(moves).toEqual([]);
    expect(model.thread!.running).toBe(true);
    expect((await model.run(irisRows(3))).label.dims).toEqual([3]);
    expect(model.placement).toBe('thread');
  });

  it('sends a model back to its thread when a run on the main thread took far longer than its estimate', async () => {
    // Every run "too long": the model goes back to its thread after its first one on the main thread.
    const { model, moves } = await load(IRIS, { mainThreadRunLimitMs: 0 });
    expect(await model.placed).toBe('main');
    const first = await model.run(irisRows(1));
    expect(model.placement).toBe('thread');
    expect(moves.map(([p]) => p)).toEqual(['main', 'thread']);
    expect(moves[1][1]).toMatch(/^a run took \d+\.\d ms$/);
    // It serves on, from its thread, with the same answers.
    const again = await model.run(irisRows(1));
    expect(Array.from(again.probabilities.data as Float32Array)).toEqual(Array.from(first.probabilities.data as Float32Array));
    expect(model.thread!.running).toBe(true);
  });

  it('keeps a model whose work its input values decide (a Loop) on its thread, however cheap a run with zeros', async () => {
    const { model, moves } = await load(SLOW);
    expect(await model.placed).toBe('thread');
    expect(moves).toEqual([]);
    const x = new ort.Tensor('float32', new Float32Array(256).fill(0.1), [1, 256]);
    expect((await model.run({ x, iterations: new ort.Tensor('int64', new BigInt64Array([1n]), [1]) })).y.dims).toEqual([1, 256]);
  });

  it('stays on its thread when told to (thread: true), and on the main thread with thread: false', async () => {
    const { model: threaded } = await load(IRIS, { thread: true });
    expect(await threaded.placed).toBe('thread');
    await threaded.run(irisRows(1));
    expect(threaded.thread!.running).toBe(true);
    // Without a thread, the main thread's session is the model's own: never ended when idle.
    const { model: inline } = await load(IRIS, { thread: false, threadIdleMs: 1 });
    expect(await inline.placed).toBe('main');
    expect(inline.thread).toBeUndefined();
    const one = await inline.run(irisRows(1));
    await new Promise((done) => setTimeout(done, 50));
    expect((await inline.run(irisRows(1))).label.data).toEqual(one.label.data);
  });
});

describe('the cost model', () => {
  const spec = (name: string, datatype: 'FP32' | 'INT64' | 'BYTES' | 'FP16', shape: number[]): TensorSpec => ({ name, datatype, shape, info: DATATYPES.get(datatype)! });

  it('estimates high: each element costs what one of the larger run cost, its fixed part included', () => {
    const cost = fitCost({ elements: 4, ms: 0.02 }, { elements: 256, ms: 0.0512 });
    expect(cost.fixedMs).toBe(0.02);
    expect(cost.perElementMs).toBeCloseTo(0.0002, 8);
    expect(estimateMs(cost, 40_000)).toBeCloseTo(0.02 + 0.0002 * 40_000, 6);
    // A larger run measured faster than a small one (noise) still makes large requests cost.
    expect(fitCost({ elements: 4, ms: 0.05 }, { elements: 256, ms: 0.0256 }).perElementMs).toBeCloseTo(0.0001, 8);
    // One run (no dynamic dimension): every request is that size.
    expect(fitCost({ elements: 1024, ms: 2 })).toEqual({ fixedMs: 2, perElementMs: 2 / 1024 });
  });

  it('makes zero inputs with the first dynamic dimension set to the rows asked for', () => {
    const feeds = calibrationFeeds(ort.Tensor, [spec('x', 'FP32', [-1, 4, -1]), spec('n', 'INT64', [1])], [spec('y', 'FP32', [-1])], CALIBRATION_ROWS)!;
    expect(feeds.x.dims).toEqual([CALIBRATION_ROWS, 4, 1]);
    expect(feeds.x.type).toBe('float32');
    expect(Array.from(feeds.x.data as Float32Array).every((v) => v === 0)).toBe(true);
    expect(feeds.n.data).toEqual(new BigInt64Array([0n]));
    expect(elementsOf(feeds)).toBe(CALIBRATION_ROWS * 4 + 1);
  });

  it("reads a model's operators from its file, and tells those whose work follows their inputs' size", () => {
    expect(readOnnxOperators(IRIS)).toEqual(['Gemm', 'Softmax', 'ArgMax']);
    expect(readOnnxOperators(SLOW)).toEqual(['Squeeze', 'Loop']);
    expect(readOnnxOperators(IRIS, 2)).toBeUndefined();
    expect(readOnnxOperators(join(FIXTURES, 'missing.onnx'))).toBeUndefined();
    expect(sizeBoundOperators(['Gemm', 'Softmax', 'ArgMax', 'ai.onnx.ml:TreeEnsembleClassifier'])).toBe(true);
    expect(sizeBoundOperators(['Squeeze', 'Loop'])).toBe(false);
    expect(sizeBoundOperators(['Shape', 'ConstantOfShape'])).toBe(false);
    expect(sizeBoundOperators(['com.microsoft:FusedMatMul'])).toBe(false);
  });

  it('leaves a model with an FP16 tensor or a string input on its thread', () => {
    expect(calibrationFeeds(ort.Tensor, [spec('x', 'FP16', [-1, 4])], [], 1)).toBeUndefined();
    // A string's cost is its length: counting elements cannot estimate it.
    expect(calibrationFeeds(ort.Tensor, [spec('s', 'BYTES', [-1])], [spec('y', 'FP32', [-1])], 1)).toBeUndefined();
    expect(calibrationFeeds(ort.Tensor, [spec('x', 'FP32', [-1, 4])], [spec('y', 'FP16', [-1])], 1)).toBeUndefined();
  });
});
