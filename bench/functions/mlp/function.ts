/**
 * The benchmark's compute-heavy model: an MLP 784-1024-1024-10 with fixed random weights
 * (scripts/models/mlp.py; `npm run bench` generates model.onnx here), dynamic batching on.
 */
import { defineFunction } from '../../../runtime/index.ts';

export default defineFunction({
  description: 'Benchmark MLP 784-1024-1024-10, dynamic batching on.',
  batching: { enabled: true, maxBatchSize: 64, maxDelayMs: 2 },
  limits: { bodySize: '16mb', maxQueue: 4096 },
});
