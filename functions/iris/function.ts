/**
 * Iris: the tabular classifier of the classic Flask recipe, a scikit-learn logistic regression
 * exported to ONNX (see scripts/models/iris.py). Adds `POST /species`, which takes flowers by
 * their measurements and answers species names with probabilities.
 */
import { HttpError, Tensor, defineFunction, float32Number } from '../../runtime/index.ts';

export const SPECIES = ['setosa', 'versicolor', 'virginica'] as const;
export const FEATURES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'] as const;

type Flower = Record<(typeof FEATURES)[number], number> | number[];

function measurements(flower: unknown, i: number): number[] {
  const values = Array.isArray(flower) ? flower : FEATURES.map((f) => (flower as Record<string, unknown> | null)?.[f]);
  if (values.length !== FEATURES.length || !values.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw new HttpError(400, `flowers[${i}] must be {${FEATURES.join(', ')}} in centimetres, or an array of those 4 numbers`);
  }
  return values as number[];
}

export default defineFunction({
  description: 'Iris species from four flower measurements (scikit-learn logistic regression).',
  labels: { probabilities: [...SPECIES] },
  example: { inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4], data: [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3] }] },
  routeDocs: {
    'POST /species': {
      summary: 'Species of flowers, by their measurements',
      description: `Each flower is {${FEATURES.join(', ')}} in centimetres, or an array of those 4 numbers. Answers the species and the probability of each.`,
      requestExample: { flowers: [
        { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 },
        { sepal_length: 6.7, sepal_width: 3.0, petal_length: 5.2, petal_width: 2.3 },
      ] },
      responseExample: { predictions: [
        { species: 'setosa', probabilities: { setosa: 0.98158467, versicolor: 0.018415343, virginica: 1.4496837e-8 } },
        { species: 'virginica', probabilities: { setosa: 0.00005595393, versicolor: 0.08008588, virginica: 0.91985816 } },
      ] },
    },
  },
  routes(app, ctx) {
    app.post('/species', async (c) => {
      const body = (await c.req.json()) as { flowers?: Flower[] } | null;
      const flowers = body?.flowers;
      if (!Array.isArray(flowers) || flowers.length === 0) {
        throw new HttpError(400, 'expected {"flowers": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]}');
      }
      const data = new Float32Array(flowers.length * FEATURES.length);
      flowers.forEach((flower, i) => data.set(measurements(flower, i), i * FEATURES.length));
      const { probabilities } = await ctx.model.run({ input: new Tensor('float32', data, [flowers.length, FEATURES.length]) }, ['probabilities']);
      const p = probabilities.data as Float32Array;
      const predictions = flowers.map((_, i) => {
        const row = p.subarray(i * SPECIES.length, (i + 1) * SPECIES.length);
        const best = row.indexOf(Math.max(...row));
        return {
          species: SPECIES[best],
          // Printed as /predict prints float32 outputs: the shortest decimal of the model's value.
          probabilities: Object.fromEntries(SPECIES.map((s, j) => [s, float32Number(row[j])])),
        };
      });
      return c.json({ predictions });
    });
  },
});
