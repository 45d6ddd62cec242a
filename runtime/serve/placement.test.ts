// A served function whose small model moves to the main thread (MODELFN_INFERENCE_THREAD's
// default, auto): the log says so, and its answers through both routes stay the same.
import { describe, expect, it } from 'vitest';
import { memoryLogger, openFunctionDir, postJson } from '../testing/index.ts';

describe('a small model under the default MODELFN_INFERENCE_THREAD (auto)', () => {
  it('moves to the main thread a second after it loads, says so in the log, and answers as before', async () => {
    const logger = memoryLogger();
    const { app, model } = await openFunctionDir('functions/iris', {}, logger);
    const infer = () => app.request('/v2/models/iris/infer', postJson({ inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4], data: [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3] }] }));
    const predict = () => app.request('/predict', postJson({ instances: [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]] }));
    const before = [await (await infer()).json(), await (await predict()).json()];
    expect(model.placement).toBe('thread');
    expect(await model.placed).toBe('main');
    expect(logger.lines.filter((l) => l.msg === 'model runs on the main thread')).toEqual([
      expect.objectContaining({ level: 'info', fn: 'iris', reason: expect.stringMatching(/^a run of one row takes 0\.\d{3} ms$/) }),
    ]);
    const after = [await (await infer()).json(), await (await predict()).json()];
    expect(after).toEqual(before);
    expect((before[1] as { predictions: { label: number }[] }).predictions.map((p) => p.label)).toEqual([0, 2]);
    await model.release();
  });
});
