/**
 * What an ML engineer asks of a served model before trusting its answers: the file (size, IR
 * version, producer, opsets), the runtime that runs it (onnxruntime's version, the execution
 * provider) and, where a process has loaded it, how long loading and the warm-up took.
 */
import * as ort from 'onnxruntime-common';
import { basename } from 'node:path';
import { readOnnxMetadata } from '../engine/onnx-file.ts';

export interface ModelFacts {
  file: string;
  bytes?: number;
  irVersion?: number;
  producer?: string;
  /** Operator domain ('' is ONNX's default one, shown as ai.onnx) to opset version. */
  opsets: Record<string, number>;
  onnxruntime: string;
  /** The runtime sets none, so onnxruntime runs every model on its default, the CPU. */
  executionProvider: 'CPU';
  loadMs?: number;
  warmUpMs?: number;
}

/**
 * The facts of a function's model file, with the timings of the process that loaded it.
 *
 * @example modelFacts('functions/iris/model.onnx', { loadMs: model.loadMs, warmUpMs: host.warmUpMs })
 */
export function modelFacts(modelPath: string, timings: { loadMs?: number; warmUpMs?: number } = {}): ModelFacts {
  const { bytes, irVersion, producer, opsets } = readOnnxMetadata(modelPath);
  const round = (ms: number | undefined) => (ms === undefined ? undefined : Math.round(ms * 10) / 10);
  return {
    file: basename(modelPath),
    bytes,
    irVersion,
    producer,
    opsets,
    onnxruntime: ort.env.versions.common ?? 'unknown',
    executionProvider: 'CPU',
    ...(timings.loadMs === undefined ? {} : { loadMs: round(timings.loadMs) }),
    ...(timings.warmUpMs === undefined ? {} : { warmUpMs: round(timings.warmUpMs) }),
  };
}
