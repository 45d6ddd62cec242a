/**
 * A function's versions. A function (name, prefix, routes, API, traffic) is what clients call; a
 * version is one model and the declaration fields that belong to a model (example, labels,
 * batching, limits), as Knative's Revisions are to its Service. Versions live in numbered folders,
 * Triton's model-repository convention: `functions/<name>/<N>/model.onnx` is version N; a bare
 * `model.onnx` is the one version `1` (or the declared `version`). Which version serves a request
 * is decided in traffic.ts, from the `traffic` resolved here.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readOnnxInputs, type OnnxInput } from '../engine/onnx-file.ts';
import type { Split } from './traffic.ts';

/** An inference request in the protocol's JSON form. */
export interface ExampleRequest {
  inputs: { name: string; datatype: string; shape: number[]; data: unknown[] }[];
}

/** What one version serves with: its model and the fields a model decides, defaults filled in. */
export interface ResolvedVersion {
  /** The version's name: its folder's number, or the declared `version` of a bare model.onnx. */
  version: string;
  /** Path of the model relative to the function's folder. */
  modelFile: string;
  /** Absolute path of the model file. */
  modelPath: string;
  /** Replicas its deployment unit runs (the function's unless the version declares its own). */
  replicas: number;
  /**
   * How its deployment unit scales with its traffic (the version's own `scale`, else the
   * function's); undefined when it runs `replicas` all the time.
   */
  scale?: ResolvedScale;
  description?: string;
  example?: ExampleRequest;
  labels: Readonly<Record<string, readonly string[]>>;
  /** Labels for outputs the `labels` map does not name. */
  defaultLabels?: readonly string[];
  batching: { enabled: boolean; maxBatchSize: number; maxDelayMs: number };
  limits: { bodySize: number; timeoutMs: number; maxQueue: number; maxQueueMs: number };
}

/** A `scale` declaration with every default filled in (runtime/function/define.ts ScaleDeclaration). */
export interface ResolvedScale {
  min: number;
  max: number;
  idleSeconds: number;
  wake: 'start' | 'unpause';
  concurrency: number;
}

/** A version found in the function's folder, with what its model documents itself. */
export interface VersionFolder {
  version: string;
  modelFile: string;
  docs: { description?: string; example?: unknown };
}

/** A version folder's name: a positive integer without leading zeros. */
const VERSION_FOLDER = /^[1-9][0-9]{0,8}$/;

/**
 * The numbered version folders of a function folder, lowest first (empty for a function with a
 * bare model.onnx).
 *
 * @example versionFolderNames('functions/iris-v') // ['1', '2']
 */
export function versionFolderNames(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => VERSION_FOLDER.test(name) && statSync(join(dir, name), { throwIfNoEntry: false })?.isDirectory())
    .sort((a, b) => Number(a) - Number(b));
}

/**
 * A declared split (`traffic` or `shadow`) checked against the versions there are, in the order
 * of the versions (JavaScript keeps integer keys in ascending order whatever the declaration's,
 * so that is the one order nginx and embedded mode can share); a string names the problem (field and what is wrong) for the declaration's error.
 * `traffic` must sum to 100; `shadow` to at most 100 (the rest is not mirrored).
 */
export function resolveSplit(field: 'traffic' | 'shadow', declared: Readonly<Record<string, number>>, versions: readonly string[]): Split | string {
  const split: { version: string; percent: number }[] = [];
  const entries = Object.entries(declared).sort(([a], [b]) => versions.indexOf(a) - versions.indexOf(b));
  for (const [version, percent] of entries) {
    if (!versions.includes(version)) return `${field}.${version}: no version '${version}' (versions: ${versions.join(', ')})`;
    if (Math.abs(Math.round(percent * 100) - percent * 100) > 1e-6) return `${field}.${version}: at most two decimals, got ${percent}`;
    split.push({ version, percent });
  }
  const total = Math.round(split.reduce((sum, s) => sum + s.percent * 100, 0)) / 100;
  if (field === 'traffic' && total !== 100) return `traffic: percentages must sum to 100, got ${total}`;
  if (field === 'shadow' && total > 100) return `shadow: percentages must sum to at most 100, got ${total}`;
  return split;
}

/** ONNX element type numbers as the protocol names them, for messages. */
const ELEM_TYPES: Record<number, string> = { 1: 'FP32', 2: 'UINT8', 3: 'INT8', 4: 'UINT16', 5: 'INT16', 6: 'INT32', 7: 'INT64', 8: 'BYTES', 9: 'BOOL', 10: 'FP16', 11: 'FP64', 12: 'UINT32', 13: 'UINT64' };

const describeInput = (i: OnnxInput) => `${i.name} ${ELEM_TYPES[i.elemType ?? 0] ?? 'unknown type'} [${(i.shape ?? []).join(', ')}]`;

/** Whether `candidate` accepts what clients send to `reference`: same type, fixed dimensions equal. */
function accepts(reference: OnnxInput, candidate: OnnxInput): boolean {
  if (reference.elemType !== candidate.elemType) return false;
  if (!reference.shape || !candidate.shape) return true;
  if (reference.shape.length !== candidate.shape.length) return false;
  return reference.shape.every((d, i) => d === -1 || candidate.shape![i] === -1 || d === candidate.shape![i]);
}

/**
 * The first version that breaks the API the function's custom routes were written against (the
 * inputs of its lowest version): an input missing, of another type or another fixed shape.
 * Returns the model file at fault and why, or undefined when every version fits.
 *
 * @example apiBreak(fn.versions) // { file: '/…/2/model.onnx', problem: "input 'input' FP32 [-1, 4] of version 1 is missing …" }
 */
export function apiBreak(versions: readonly Pick<ResolvedVersion, 'version' | 'modelPath'>[]): { file: string; problem: string } | undefined {
  if (versions.length < 2) return undefined;
  const reference = readOnnxInputs(versions[0].modelPath);
  if (!reference) return undefined;
  for (const v of versions.slice(1)) {
    const inputs = readOnnxInputs(v.modelPath);
    if (!inputs) continue;
    for (const input of reference) {
      const same = inputs.find((i) => i.name === input.name);
      if (!same || !accepts(input, same)) {
        const found = same ? `it has ${describeInput(same)}` : `its inputs are ${inputs.map((i) => i.name).join(', ') || 'none'}`;
        return { file: v.modelPath, problem: `input '${input.name}' (${describeInput(input)}) of version ${versions[0].version}, which the function's routes use, does not fit: ${found}` };
      }
    }
  }
  return undefined;
}

/**
 * The version a server process runs (MODELFN_VERSION): the one named, or the highest when none
 * is. Undefined when the function has no such version.
 *
 * @example servedVersion(fn, '1')?.modelFile // '1/model.onnx'
 */
export function servedVersion<F extends { versions: readonly ResolvedVersion[]; description?: string }>(fn: F, wanted: string): F | undefined {
  if (!wanted) return fn;
  if (!fn.versions.some((v) => v.version === wanted)) return undefined;
  return fn.versions.length > 1 ? atVersion(fn, wanted) : fn;
}

/**
 * The function as one version serves it: the version's model and model fields in place of the
 * function's defaults (its highest version's). Each version gets its own host and app from this.
 *
 * @example const v1 = atVersion(fn, '1'); // v1.modelPath ends with '/1/model.onnx'
 */
export function atVersion<F extends { versions: readonly ResolvedVersion[]; description?: string }>(fn: F, version: string): F {
  const v = fn.versions.find((x) => x.version === version);
  if (!v) throw new Error(`no version '${version}' (versions: ${fn.versions.map((x) => x.version).join(', ')})`);
  return { ...fn, ...v, description: v.description ?? fn.description };
}
