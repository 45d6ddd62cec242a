/**
 * modelfn's public API for function declarations and custom routes.
 */
export { defineFunction } from './function/define.ts';
export type { FunctionContext, FunctionDeclaration, ResolvedFunction, RoutesHook } from './function/define.ts';
export type { Model } from './engine/model.ts';
export type { TensorSpec, Feeds, Fetches } from './tensor/types.ts';
export { HttpError } from './core/errors.ts';
// onnxruntime-node's Tensor is this class; importing it from here leaves the native library to the inference thread.
export { Tensor } from 'onnxruntime-common';
export { float32Number } from './tensor/codec.ts';
