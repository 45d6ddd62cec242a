/**
 * modelfn's public API for function declarations and custom routes.
 */
export { defineFunction } from './function/define.ts';
export type { FunctionContext, FunctionDeclaration, ResolvedFunction, RoutesHook } from './function/define.ts';
export type { Model, TensorSpec, Feeds, Fetches } from './engine/model.ts';
export { HttpError } from './core/errors.ts';
export { Tensor } from 'onnxruntime-node';
