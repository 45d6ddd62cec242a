/**
 * Finding and reading function folders.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { RuntimeConfig } from '../core/config.ts';
import { DeclarationError, resolveDeclaration, type ResolvedFunction } from './define.ts';

/** File names a declaration may have, in the order they are looked for. */
export const DECLARATION_FILES = ['function.ts', 'function.mts', 'function.js', 'function.mjs'] as const;

/** The declaration file of a function folder, if it has one. */
export function findDeclarationFile(dir: string): string | undefined {
  for (const name of DECLARATION_FILES) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** Paths shown to people are relative to the working directory when that is shorter. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}

/**
 * Resolves a function from its folder and the declaration module it exports (if any),
 * checking that the model file exists. Used both from source and from bundles.
 */
export function resolveFunction(
  dir: string,
  declaration: unknown,
  declarationFile: string | undefined,
  config: Pick<RuntimeConfig, 'bodyLimit' | 'timeoutMs'>,
  folderName = basename(resolve(dir)),
): ResolvedFunction {
  const absDir = resolve(dir);
  const fn = resolveDeclaration(declaration, {
    dir: absDir,
    folderName,
    declarationFile: declarationFile && displayPath(declarationFile),
  }, config);
  if (!existsSync(fn.modelPath)) {
    const onnx = readdirSync(absDir).filter((f) => f.endsWith('.onnx'));
    const hint = !declarationFile && onnx.length === 1 ? `; found ${onnx[0]}: rename it to model.onnx or declare model: '${onnx[0]}'` : '';
    throw new DeclarationError(displayPath(fn.modelPath), `model file not found${hint}`);
  }
  if (!statSync(fn.modelPath).isFile()) throw new DeclarationError(displayPath(fn.modelPath), 'is not a file');
  return fn;
}

/**
 * Loads a function folder from source: imports its declaration file when present.
 *
 * @example const fn = await loadFunctionDir('functions/iris', readConfig());
 */
export async function loadFunctionDir(dir: string, config: Pick<RuntimeConfig, 'bodyLimit' | 'timeoutMs'>, fresh = false): Promise<ResolvedFunction> {
  const absDir = resolve(dir);
  if (!existsSync(absDir) || !statSync(absDir).isDirectory()) {
    throw new DeclarationError(displayPath(absDir), 'function folder not found');
  }
  const declarationFile = findDeclarationFile(absDir);
  let declaration: unknown;
  if (declarationFile) {
    let mod: { default?: unknown };
    try {
      const url = pathToFileURL(declarationFile).href;
      // A fresh load (watch mode) imports the declaration and everything it imports anew.
      mod = (fresh ? await (await import('tsx/esm/api')).tsImport(url, import.meta.url) : await import(url)) as { default?: unknown };
    } catch (err) {
      const reason = String((err as Error)?.message ?? err).split('\n')[0];
      throw new DeclarationError(displayPath(declarationFile), `cannot be loaded: ${reason}`);
    }
    if (mod.default === undefined) {
      throw new DeclarationError(displayPath(declarationFile), 'has no default export; export default defineFunction({...})');
    }
    declaration = mod.default;
    // tsImport loads a .ts file outside an ESM package as CommonJS: its exports arrive wrapped once more.
    if (fresh && declaration && typeof declaration === 'object' && Object.keys(declaration).join() === 'default') {
      declaration = (declaration as { default: unknown }).default;
    }
  }
  return resolveFunction(absDir, declaration, declarationFile, config);
}

/** Every function folder under a directory (folders holding a declaration or an .onnx file). */
export function listFunctionDirs(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => !e.name.startsWith('.') && !e.name.startsWith('_'))
    .map((e) => join(root, e.name))
    // Symbolic links to function folders count as folders.
    .filter((d) => statSync(d, { throwIfNoEntry: false })?.isDirectory())
    .filter((d) => findDeclarationFile(d) || readdirSync(d).some((f) => f.endsWith('.onnx')))
    .sort();
}
