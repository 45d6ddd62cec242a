/**
 * The tensor types every layer shares: a model's input or output as the protocol describes it,
 * and the named tensors a session takes and returns. A leaf: it imports only types.
 */
import type ort from 'onnxruntime-node';
import type { DatatypeInfo } from './datatypes.ts';

/** One input or output of a model, as the protocol's metadata reports it. */
export interface TensorSpec {
  name: string;
  datatype: DatatypeInfo['datatype'];
  /** -1 for a dynamic dimension. */
  shape: number[];
  info: DatatypeInfo;
}

export type Feeds = Record<string, ort.Tensor>;
export type Fetches = Record<string, ort.Tensor>;
