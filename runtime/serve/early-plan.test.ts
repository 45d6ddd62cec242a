import { describe, expect, it } from 'vitest';
import { sessionOptionsFor } from '../engine/inference-thread.ts';
import { modelGuess, wantsInferenceThread } from './early-plan.ts';

const MODELS = { default: '2/model.onnx', versions: { '1': '1/model.onnx', '2': '2/model.onnx' } };

describe("the early inference thread's plan", () => {
  it("guesses the version the environment names, else the function's default, with the environment's session settings", () => {
    expect(modelGuess({}, MODELS, '/app/function')).toEqual({ path: '/app/function/2/model.onnx', options: sessionOptionsFor({}) });
    expect(modelGuess({ MODELFN_VERSION: '1' }, MODELS, '/app/function')?.path).toBe('/app/function/1/model.onnx');
    const threads = modelGuess({ MODELFN_INTRA_OP_THREADS: '1', MODELFN_ORT_SPINNING: 'true' }, MODELS, '/app/function')!.options;
    expect(threads).toEqual(sessionOptionsFor({ intraOpThreads: 1, spinning: true }));
    expect(threads.intraOpNumThreads).toBe(1);
    expect(threads.extra).toBeUndefined();
  });

  it('guesses nothing from source, for a version the bundle lacks, or under a bad setting (the start reports it)', () => {
    expect(modelGuess({}, undefined, '/app/function')).toBeUndefined();
    expect(modelGuess({ MODELFN_VERSION: '3' }, MODELS, '/app/function')).toBeUndefined();
    expect(modelGuess({ MODELFN_INTRA_OP_THREADS: 'many' }, MODELS, '/app/function')).toBeUndefined();
  });

  it('starts a thread only where this process will load the model on one', () => {
    expect(wantsInferenceThread({}, true, [])).toBe(true);
    expect(wantsInferenceThread({ MODELFN_INFERENCE_THREAD: 'false' }, true, [])).toBe(false);
    // The primary of several workers only forks them; each worker loads its own.
    expect(wantsInferenceThread({ MODELFN_WORKERS: '2' }, true, [])).toBe(false);
    expect(wantsInferenceThread({ MODELFN_WORKERS: '2' }, false, [])).toBe(true);
    expect(wantsInferenceThread({ MODELFN_PRIME_COMPILE_CACHE: 'false' }, true, ['--prime-compile-cache'])).toBe(false);
  });
});
