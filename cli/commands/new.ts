/**
 * `modelfn new <name>`: scaffolds a function that passes its own test at once.
 */
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { CliError, UsageError, parse, type Command } from '../args.ts';
import { declarationFile, readmeFile, testFile, type ScaffoldInput } from '../scaffold.ts';

const ROOT = resolve(import.meta.dirname, '../..');

/** The placeholder model when no --model is given (scripts/models/starter.py): y = 2x, x FP32 [-1, 3]. */
export const STARTER_MODEL = join(ROOT, 'cli/templates/starter.onnx');

const importPath = (from: string, to: string) => {
  const path = relative(from, to).split(sep).join('/');
  return path.startsWith('.') ? path : `./${path}`;
};

export const create: Command = {
  name: 'new',
  summary: 'scaffold a function: declaration, test and README',
  help: `usage: modelfn new <name> [--model PATH.onnx] [--functions DIR]

Creates DIR/<name>/ (DIR: functions) holding the model, function.ts (the declaration), a test
that passes at once (<name>.test.ts) and a short README.md.

  --model PATH.onnx   the model to serve; it is checked with onnxruntime, then copied.
                      Without it, a starter model is copied that doubles its input
                      (x FP32 [-1, 3] -> y FP32 [-1, 3]): replace model.onnx with your own.
  --functions DIR     where functions live (default: functions)

<name> is lowercase letters, digits and dashes, starting with a letter.
`,
  async run(args) {
    const parsed = parse(this, args, { model: { type: 'string' }, functions: { type: 'string', default: 'functions' } }, [1, 1]);
    if (!parsed) return 0;
    // zod and onnxruntime load only when needed, so --help starts fast.
    const { NAME_PATTERN } = await import('../../runtime/function/define.ts');
    const { displayPath } = await import('../../runtime/function/discover.ts');
    const [name] = parsed.positionals;
    if (!NAME_PATTERN.test(name)) throw new UsageError(`'${name}' is not a function name: use lowercase letters, digits and dashes, starting with a letter`);
    const functionsDir = resolve(parsed.values.functions as string);
    const dir = join(functionsDir, name);
    if (existsSync(dir)) throw new CliError(`${displayPath(dir)} already exists`);
    const source = parsed.values.model as string | undefined;
    if (source !== undefined && !existsSync(source)) throw new CliError(`${source}: no such file`);

    const { ModelLoadError, loadModel } = await import('../../runtime/engine/model.ts');
    let model;
    try {
      model = await loadModel(source ?? STARTER_MODEL, { thread: false });
    } catch (err) {
      if (err instanceof ModelLoadError) throw new CliError(err.message);
      throw err;
    }
    const { inputs, outputs } = model;
    await model.release();

    const starter = source === undefined;
    const input: ScaffoldInput = {
      name,
      inputs,
      outputs,
      runtime: importPath(dir, join(ROOT, 'runtime')),
      functionsDir: displayPath(functionsDir),
      modelSource: starter ? 'the starter model (it doubles its input: replace model.onnx with yours)' : `\`${source}\``,
      ...(starter && {
        example: { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }] },
        expected: { name: 'y', data: [2, 4, 6] },
      }),
    };
    mkdirSync(dir, { recursive: true });
    try {
      copyFileSync(source ?? STARTER_MODEL, join(dir, 'model.onnx'));
      writeFileSync(join(dir, 'function.ts'), declarationFile(input));
      writeFileSync(join(dir, `${name}.test.ts`), testFile(input));
      writeFileSync(join(dir, 'README.md'), readmeFile(input));
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw new CliError(`cannot write ${displayPath(dir)}: ${(err as Error).message}`);
    }
    const shown = displayPath(dir);
    // The port npm start will take: PORT as this shell has it, else 8080, the same rule as invoke's.
    const port = process.env.PORT || '8080';
    const next = [
      [`npx vitest run ${shown}`, 'its test'],
      ['npm start', `serves it at http://localhost:${port}/${name}/ (docs: /${name}/docs)`],
      [`npx modelfn invoke ${name}`, `sends its example request to http://127.0.0.1:${port}`],
    ];
    const otherPort = String(Number(port) + 1);
    const width = Math.max(...next.map(([c]) => c.length));
    process.stdout.write(`created ${shown}/: model.onnx, function.ts, ${name}.test.ts, README.md
${starter ? 'model.onnx is the starter model (it doubles its input): replace it with yours, then update the test.\n' : ''}
next:
${next.map(([c, what]) => `  ${c.padEnd(width)}  # ${what}`).join('\n')}
another port: PORT=${otherPort} npm start, then npx modelfn invoke ${name} --url http://127.0.0.1:${otherPort}
`);
    return 0;
  },
};
