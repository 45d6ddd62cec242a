import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorOf, openFunctionDir, postJson } from 'modelfn/testing';

const expected = JSON.parse(readFileSync(new URL('./expected.json', import.meta.url), 'utf8')) as {
  labels: string[];
  rows: number[][];
  probabilities: number[][];
  label: number[];
};

describe('iris', () => {
  it('predicts what scikit-learn predicts, to float32 precision', async () => {
    const { app } = await openFunctionDir('functions/iris');
    const res = await app.request('/v2/models/iris/infer', postJson({
      inputs: [{ name: 'input', datatype: 'FP32', shape: [expected.rows.length, 4], data: expected.rows }],
    }));
    const { outputs } = (await res.json()) as { outputs: { name: string; data: number[] }[] };
    const probabilities = outputs.find((o) => o.name === 'probabilities')!.data;
    expected.probabilities.flat().forEach((p, i) => expect(probabilities[i]).toBeCloseTo(p, 5));
    expect(outputs.find((o) => o.name === 'label')!.data).toEqual(expected.label);
  });

  it('names species with probabilities at /species', async () => {
    const { app } = await openFunctionDir('functions/iris');
    const flowers = expected.rows.map(([sepal_length, sepal_width, petal_length, petal_width]) => ({ sepal_length, sepal_width, petal_length, petal_width }));
    const res = await app.request('/species', postJson({ flowers }));
    expect(res.status).toBe(200);
    const { predictions } = (await res.json()) as { predictions: { species: string; probabilities: Record<string, number> }[] };
    expect(predictions.map((p) => p.species)).toEqual(expected.label.map((l) => expected.labels[l]));
    expect(predictions[0].probabilities.setosa).toBeCloseTo(expected.probabilities[0][0], 5);
    const asArrays = await app.request('/species', postJson({ flowers: [expected.rows[5]] }));
    expect(((await asArrays.json()) as { predictions: { species: string }[] }).predictions[0].species).toBe(expected.labels[expected.label[5]]);
  });

  it('explains bad flowers', async () => {
    const { app } = await openFunctionDir('functions/iris');
    const missing = await errorOf(await app.request('/species', postJson({ flowers: [{ sepal_length: 5 }] })));
    expect(missing).toEqual({ status: 400, error: expect.stringContaining('flowers[0] must be {sepal_length, sepal_width, petal_length, petal_width}') });
    expect((await errorOf(await app.request('/species', postJson({ flowers: [] })))).status).toBe(400);
    expect((await errorOf(await app.request('/species', postJson([1, 2])))).status).toBe(400);
    expect((await errorOf(await app.request('/species'))).status).toBe(405);
  });
});
