/**
 * `POST /predict`: `{"instances": [...]}` in, `{"predictions": [...]}` out, in the style of
 * TF Serving and the classic Flask recipe, for models with one input.
 */
import type { Hono } from 'hono';
import type ort from 'onnxruntime-node';
import { elementCount, hasWideIntegers, shapeMismatch, shapeText, tensorFromJson } from '../tensor/codec.ts';
import { predictionsOf } from '../tensor/predictions.ts';
import { invalidInput } from '../core/errors.ts';
import type { FunctionHost } from '../function/host.ts';
import { parseBody } from '../tensor/infer.ts';
import { stringifyExact, withExactIntegers } from '../tensor/json-exact.ts';
import type { TensorSpec } from '../tensor/types.ts';
import { readJsonBody, runModel } from './protocol.ts';
import { jsonAnswer } from './response-compression.ts';

/** Deeper nesting than this is not read (no ONNX model here comes close). */
const MAX_RANK = 32;

/** The shape of one instance, read from its nesting (first element at each level), and how deep it goes. */
function instanceShape(instance: unknown, maxRank: number): { shape: number[]; depth: number } {
  const shape: number[] = [];
  let depth = 0;
  let v = instance;
  // Counted to the end (bounded by the body's size), kept only to maxRank.
  for (; Array.isArray(v); depth++, v = v[0]) if (depth < maxRank) shape.push(v.length);
  return { shape, depth };
}

/** Reads `{"instances": [...]}` into the model's one input; no tensor for no instances. */
function decodeInstances(json: unknown, spec: TensorSpec, maxElements: number): { rows: number; tensor?: ort.Tensor } {
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { instances?: unknown }).instances)) {
    throw invalidInput('predict request must be a JSON object with an "instances" array, e.g. {"instances": [[5.1, 3.5, 1.4, 0.2]]}');
  }
  const instances = (json as { instances: unknown[] }).instances;
  if (instances.length === 0) return { rows: 0 };
  // The nesting is read past the model's rank, so a wrong shape is reported as it was sent.
  const read = instanceShape(instances[0], MAX_RANK);
  const shape = [instances.length, ...read.shape];
  const where = `instances (input '${spec.name}')`;
  if (shapeMismatch(spec.shape, shape) || read.depth > MAX_RANK) {
    const row = spec.shape.length > 1 ? `; each instance is one row of shape [${spec.shape.slice(1).join(',')}]` : '; each instance is one value';
    const sent = read.depth > MAX_RANK ? `is nested ${read.depth + 1} arrays deep (shape ${shapeText(shape)})` : `has shape [${shape.join(',')}]`;
    throw invalidInput(`${where}: the batch ${sent}, the model expects [${spec.shape.join(',')}] (-1 = any size)${row}`);
  }
  const count = elementCount(where, shape, maxElements);
  return { rows: instances.length, tensor: tensorFromJson(where, spec.info, shape, count, instances) };
}

export function predictRoute(app: Hono, host: FunctionHost, maxElements: number): void {
  app.post('/predict', async (c) => {
    const model = host.model;
    if (model.inputs.length !== 1) {
      throw invalidInput(`/predict serves models with one input; '${host.fn.name}' has ${model.inputs.length} (${model.inputs.map((i) => i.name).join(', ')}): use /v2/models/${host.fn.name}/infer`);
    }
    model.checkAdmission();
    const spec = model.inputs[0];
    const { json, text } = parseBody(await readJsonBody(c), undefined);
    const { rows, tensor } = withExactIntegers(text, json, (parsed) => decodeInstances(parsed, spec, maxElements));
    if (!tensor) return c.json({ predictions: [] });
    const fetches = await runModel(c, model, { [spec.name]: tensor });
    const names = model.outputs.map((o) => o.name);
    const predictions = predictionsOf(fetches, names, rows);
    // 64-bit integers beyond ±2^53 come as BigInt, which JSON.stringify refuses.
    if (names.some((name) => hasWideIntegers(fetches[name]))) {
      return jsonAnswer(c, stringifyExact({ predictions }));
    }
    return jsonAnswer(c, JSON.stringify({ predictions }));
  });
}
