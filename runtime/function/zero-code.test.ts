import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FIXTURES, ROOT, openFunctionDir, postJson } from '../testing/index.ts';

// functions/digits holds nothing but its model: it must serve with every default.
describe('a zero-code function (functions/digits)', () => {
  it('is a folder holding only a model', () => {
    expect(readdirSync(`${ROOT}/functions/digits`)).toEqual(['model.onnx']);
  });

  it('takes its defaults: name from the folder, prefix, limits', async () => {
    const { host } = await openFunctionDir('functions/digits');
    expect(host.fn).toMatchObject({ name: 'digits', prefix: '/digits', modelFile: 'model.onnx', version: '1', replicas: 1 });
    expect(host.fn.limits).toEqual({ bodySize: 10 * 1024 * 1024, timeoutMs: 30000, maxQueue: 1024, maxQueueMs: 500 });
    expect(host.fn.declarationFile).toBeUndefined();
  });

  it('predicts what scikit-learn predicts, through /predict', async () => {
    const expected = JSON.parse(readFileSync(`${FIXTURES}/digits-expected.json`, 'utf8')) as { rows: number[][]; probabilities: number[][]; label: number[] };
    const { app } = await openFunctionDir('functions/digits');
    const res = await app.request('/predict', postJson({ instances: expected.rows }));
    const { predictions } = (await res.json()) as { predictions: { label: number; probabilities: number[] }[] };
    expect(predictions.map((p) => p.label)).toEqual(expected.label);
    predictions.forEach((p, i) => p.probabilities.forEach((v, j) => expect(v).toBeCloseTo(expected.probabilities[i][j], 5)));
  });
});
