// The inference thread alone: a real onnxruntime session on a worker thread, the iris model.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT } from '../testing/index.ts';
import { InferenceThreadExit, SessionCreateError, prestartInferenceThread, sessionOptionsFor, startInferenceThread, type ModelGuess, type ThreadSession } from './inference-thread.ts';

const IRIS = join(ROOT, 'functions/iris/model.onnx');
const MODEL = readFileSync(IRIS);
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
    // Timed on the thread itself: a run of iris takes well under a second.
    expect(session.lastRunMs).toBeGreaterThan(0);
    expect(session.lastRunMs).toBeLessThan(1000);
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

describe('a thread started early with a guess of its model', () => {
  /** Starts a thread early with `guess`, then hands it iris: its file's path, or its bytes. */
  async function early(guess: ModelGuess, options = sessionOptionsFor({}), model: string | Uint8Array = IRIS): Promise<ThreadSession> {
    prestartInferenceThread(new URL('./inference-worker.mjs', import.meta.url), guess);
    const session = await startInferenceThread(model, options, {});
    sessions.push(session);
    return session;
  }

  const predicts = async (session: ThreadSession) => {
    const out = await session.run(feeds(), ['label']);
    expect([...(out.label.data as BigInt64Array)].map(Number)).toEqual([0, 2]);
  };

  it('takes the session it created when the model sent is the guessed file with the guessed options', async () => {
    const session = await early({ path: IRIS, options: sessionOptionsFor({}) });
    expect(session.early).toBe(true);
    await predicts(session);
  });

  it('makes its own session for another file, other options, or bytes sent instead of a file', async () => {
    const digits = await early({ path: join(ROOT, 'functions/digits/model.onnx'), options: sessionOptionsFor({}) });
    expect(digits.early).toBe(false);
    // iris's answers: digits' session (64 inputs) would refuse these feeds.
    await predicts(digits);
    const otherOptions = await early({ path: IRIS, options: sessionOptionsFor({ intraOpThreads: 1 }) });
    expect(otherOptions.early).toBe(false);
    await predicts(otherOptions);
    const noPath = await early({ path: IRIS, options: sessionOptionsFor({}) }, sessionOptionsFor({}), MODEL);
    expect(noPath.early).toBe(false);
    await predicts(noPath);
  });

  it('tries the file again when the guess could not be created, and then fails with onnxruntime\'s reason, not the path twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'modelfn-guess-'));
    const corrupt = join(dir, 'model.onnx');
    writeFileSync(corrupt, 'not a protobuf');
    const failed = early({ path: corrupt, options: sessionOptionsFor({}) }, sessionOptionsFor({}), corrupt);
    await expect(failed).rejects.toThrow(/^Protobuf parsing failed/);
    // The message is the second try's (the guess's own would start "Load model from <path> failed:").
    await expect(failed).rejects.toBeInstanceOf(SessionCreateError);
    rmSync(dir, { recursive: true });
  });

  it('reads the file named on the thread: the bytes are not needed', async () => {
    const session = await startInferenceThread(IRIS, sessionOptionsFor({}));
    sessions.push(session);
    await predicts(session);
  });
});
