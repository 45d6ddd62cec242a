/**
 * `modelfn list`: every function, read from its declaration and its model's metadata.
 */
import { basename, resolve } from 'node:path';
import { readConfig } from '../../runtime/core/config.ts';
import type { TensorSpec } from '../../runtime/tensor/types.ts';
import { parse, type Command } from '../args.ts';
import { table, tensorText } from '../format.ts';

interface Listed {
  name: string;
  prefix?: string;
  replicas?: number;
  inputs?: Pick<TensorSpec, 'name' | 'datatype' | 'shape'>[];
  outputs?: Pick<TensorSpec, 'name' | 'datatype' | 'shape'>[];
  error?: string;
}

/** Loads each function folder and its model; a folder that cannot load is listed with why. */
export async function listFunctions(root: string): Promise<Listed[]> {
  const config = readConfig();
  // onnxruntime and the declaration loader load only when needed, so --help starts fast.
  const { listFunctionDirs, loadFunctionDir } = await import('../../runtime/function/discover.ts');
  const { loadModel } = await import('../../runtime/engine/model.ts');
  const listed: Listed[] = [];
  for (const dir of listFunctionDirs(root)) {
    try {
      const fn = await loadFunctionDir(dir, config);
      const model = await loadModel(fn.modelPath, { thread: false });
      const specs = (list: readonly TensorSpec[]) => list.map(({ name, datatype, shape }) => ({ name, datatype, shape }));
      listed.push({ name: fn.name, prefix: fn.prefix, replicas: fn.replicas, inputs: specs(model.inputs), outputs: specs(model.outputs) });
      await model.release();
    } catch (err) {
      listed.push({ name: basename(dir), error: (err as Error).message });
    }
  }
  return listed;
}

export const list: Command = {
  name: 'list',
  summary: "each function's prefix, model inputs and outputs, and replicas",
  help: `usage: modelfn list [--functions DIR] [--json]

Lists every function in DIR (default: functions) with its gateway prefix, its replicas, and its
model's inputs and outputs (datatype and shape; -1 is a dimension of any size). Reads the
declarations and the models; nothing needs to be running. Exits 1 when a function cannot load.

  --functions DIR   where the functions are (default: functions)
  --json            print JSON instead of a table
`,
  async run(args) {
    const parsed = parse(this, args, { functions: { type: 'string', default: 'functions' }, json: { type: 'boolean' } }, [0, 0]);
    if (!parsed) return 0;
    const root = resolve(parsed.values.functions as string);
    const functions = await listFunctions(root);
    if (parsed.values.json) {
      process.stdout.write(`${JSON.stringify({ functions }, null, 2)}\n`);
    } else if (functions.length === 0) {
      process.stdout.write(`no functions in ${parsed.values.functions}: add one with modelfn new <name>\n`);
    } else {
      process.stdout.write(table(
        ['function', 'prefix', 'replicas', 'inputs', 'outputs'],
        functions.map((f) => f.error
          ? [f.name, '-', '-', 'cannot load (see below)', '']
          : [f.name, f.prefix!, String(f.replicas), f.inputs!.map(tensorText), f.outputs!.map(tensorText)]),
      ));
      // Errors are long (a path, a line and column, the reason): each on lines of its own, so the table stays narrow.
      for (const f of functions.filter((x) => x.error)) process.stdout.write(`\n${f.name} cannot load:\n  ${f.error}\n`);
    }
    return functions.some((f) => f.error) ? 1 : 0;
  },
};
