/**
 * The limit: in-process `session.run` on the same model, batch size and onnxruntime settings
 * the server uses, with nothing else in the way.
 */
import ort from 'onnxruntime-node';
import { readConfig } from '../runtime/core/config.ts';
import { loadModel } from '../runtime/engine/model.ts';

export interface LimitResult {
  rows: number;
  /** Median milliseconds per run. */
  p50: number;
  rowsPerSecond: number;
  runs: number;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

/** Runs the model back to back for `seconds` on `rows` rows of `features` values. */
export async function measureLimit(modelPath: string, features: number, rows: number, seconds: number): Promise<LimitResult> {
  const config = readConfig();
  const model = await loadModel(modelPath, { intraOpThreads: config.intraOpThreads, interOpThreads: config.interOpThreads, spinning: config.ortSpinning, thread: false });
  const data = Float32Array.from({ length: rows * features }, (_, i) => ((i * 7919) % 1000) / 1000);
  const feeds = { [model.inputs[0].name]: new ort.Tensor('float32', data, [rows, features]) };
  for (let i = 0; i < 20; i++) await model.run(feeds);
  const times: number[] = [];
  const end = performance.now() + seconds * 1000;
  const started = performance.now();
  while (performance.now() < end) {
    const t0 = performance.now();
    await model.run(feeds);
    times.push(performance.now() - t0);
  }
  const elapsed = (performance.now() - started) / 1000;
  await model.release();
  return { rows, p50: median(times), rowsPerSecond: (times.length * rows) / elapsed, runs: times.length };
}
