// The inference thread alone: a real onnxruntime session on a worker thread, the iris model.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT } from '../testing/index.ts';
import { InferenceThreadExit, startInferenceThread, type ThreadSession } from './inference-thread.ts';

const MODEL = readFileSync(join(ROOT, 'functions/iris/model.onnx'));
const feeds = () => ({ input: new ort.Tensor('float32', new Float32Array([5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]), [2, 4]) });

let sessions: ThreadSession[] = [];
afterEach(async () => {
  for (const s of sessions) await s.release().catch(() => {});
  sessions = [];
});

async function start(onExit?: (reason: string) => void): Promise<ThreadSession> {
  const session = await startInferenceThread(MODEL, { graphOptimizationLevel: 'all' }, { onExit });
  sessions.push(session);
  return session;
}

describe('startInferenceThread', () => {
  it("reports the model's inputs and outputs and runs it", async () => {
    const session = await start();
    expect(session.inputMetadata.map((m) => m.name)).toEqual(['input']);
    const out = await session.run(feeds(), ['label', 'probabilities']);
    expect([...(out.label.data as BigInt64Array)].map(Number)).toEqual([0, 2]);
    expect(out.probabilities.dims).toEqual([2, 3]);
  });

  it('moves the feeds to the thread when asked to (the caller is left an empty buffer), and copies them otherwise', async () => {
    const session = await start();
    const copied = feeds();
    await session.run(copied, undefined, false);
    expect((copied.input.data as Float32Array).length).toBe(8);
    const moved = feeds();
    const out = await session.run(moved, undefined, true);
    expect((moved.input.data as Float32Array).buffer.byteLength).toBe(0);
    expect(out.probabilities.dims).toEqual([2, 3]);
  });

  it('copies a view into a larger buffer rather than moving the buffer under it', async () => {
    const session = await start();
    const body = new Float32Array(16).fill(1);
    const view = new ort.Tensor('float32', body.subarray(4, 12), [2, 4]);
    await session.run({ input: view }, undefined, true);
    expect(body.buffer.byteLength).toBe(64);
  });

  it('fails the runs still waiting and every later one when the thread ends, and says so once', async () => {
    const exits: string[] = [];
    const session = await start((reason) => exits.push(reason));
    const before = session.run(feeds());
    const ended = session.terminate();
    const waiting = session.run(feeds());
    await ended;
    expect((await before).probabilities.dims).toEqual([2, 3]);
    await expect(waiting).rejects.toBeInstanceOf(InferenceThreadExit);
    await expect(session.run(feeds())).rejects.toThrow('the inference thread exited (code 1)');
    expect(exits).toEqual(['exited (code 1)']);
  });

  it('says nothing when released as planned', async () => {
    const exits: string[] = [];
    const session = await start((reason) => exits.push(reason));
    await session.release();
    expect(exits).toEqual([]);
  });

  it('rejects a model onnxruntime cannot load, naming onnxruntime\'s reason', async () => {
    await expect(startInferenceThread(new Uint8Array([1, 2, 3]), {})).rejects.toThrow(/protobuf|parse|model/i);
  });
});
