/**
 * The `predictions` of a `/predict` answer, from a batch's outputs: one per instance. Apart from
 * the route, so that the docs can show the answer to their example without a request.
 */
import type ort from 'onnxruntime-node';
import { jsonValueAt } from './codec.ts';

/** Row r of a tensor whose first dimension is the batch, nested to its remaining shape. */
function row(tensor: ort.Tensor, r: number, rows: number): unknown {
  const dims = tensor.dims;
  const batched = dims.length > 0 && dims[0] === rows;
  const inner = batched ? dims.slice(1) : dims;
  const size = inner.reduce((a, b) => a * b, 1);
  // FP32 as the shortest decimal of its value; every type as the protocol prints it.
  const at = jsonValueAt(tensor);
  let pos = batched ? r * size : 0;
  const build = (depth: number): unknown => {
    if (depth === inner.length) return at(pos++);
    const out = new Array(inner[depth]);
    for (let i = 0; i < inner[depth]; i++) out[i] = build(depth + 1);
    return out;
  };
  return build(0);
}

/**
 * One prediction per instance: the matching row of the one output, or of every output by name.
 *
 * @example predictionsOf(fetches, ['probabilities', 'label'], 2) // [{ probabilities: [...], label: 0 }, {...}]
 */
export function predictionsOf(fetches: Readonly<Record<string, ort.Tensor>>, names: readonly string[], rows: number): unknown[] {
  const predictions = new Array(rows);
  for (let r = 0; r < rows; r++) {
    if (names.length === 1) {
      predictions[r] = row(fetches[names[0]], r, rows);
    } else {
      const entry: Record<string, unknown> = {};
      for (const name of names) entry[name] = row(fetches[name], r, rows);
      predictions[r] = entry;
    }
  }
  return predictions;
}
