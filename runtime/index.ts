/**
 * modelfn's public API for function declarations and custom routes.
 */
export { defineFunction } from './define.ts';
export type { FunctionContext, FunctionDeclaration, ResolvedFunction, RoutesHook } from './define.ts';
export type { Model, TensorSpec, Feeds, Fetches } from './model.ts';
export { HttpError } from './errors.ts';
export { Tensor } from 'onnxruntime-node';
