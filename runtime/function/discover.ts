/**
 * Finding and reading function folders.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { RuntimeConfig } from '../core/config.ts';
import { completeDeclaration, declarationSnapshot, DeclarationError, type FunctionDeclaration, type ResolvedFunction } from './define.ts';
import { readOnnxMetadata } from '../engine/onnx-file.ts';
import { apiBreak, versionFolderNames, type VersionFolder } from './version.ts';

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
 * The declaration with what the model documents itself (runtime/engine/onnx-file.ts) filling its
 * gaps: the description from the ONNX doc_string, the example from `modelfn.example`.
 */
function withModelDocs(dir: string, declaration: unknown): unknown {
  if (declaration !== undefined && (typeof declaration !== 'object' || declaration === null || Array.isArray(declaration))) return declaration;
  const declared = (declaration ?? {}) as Record<string, unknown>;
  const docs = modelDocs(join(dir, typeof declared.model === 'string' ? declared.model : 'model.onnx'));
  return Object.keys(docs).length ? { ...docs, ...declared } : declaration;
}

/** What a model file documents itself: the description from its doc_string, the example from `modelfn.example`. */
function modelDocs(modelPath: string): { description?: string; example?: unknown } {
  const { docString, props } = readOnnxMetadata(modelPath);
  const docs: { description?: string; example?: unknown } = {};
  if (docString?.trim()) docs.description = docString.trim();
  if (props['modelfn.example']) {
    try {
      docs.example = JSON.parse(props['modelfn.example']);
    } catch {
      throw new DeclarationError(displayPath(modelPath), "metadata_props 'modelfn.example' is not JSON");
    }
  }
  return docs;
}

/**
 * The version folders of a function folder (`1/model.onnx`, `2/model.onnx`), each with its
 * model's own docs; empty for a function with a bare model file.
 */
function versionFolders(dir: string): VersionFolder[] {
  const names = versionFolderNames(dir);
  if (!names.length) return [];
  if (existsSync(join(dir, 'model.onnx'))) {
    throw new DeclarationError(displayPath(dir), `holds both model.onnx and version folders (${names.map((n) => `${n}/`).join(', ')}); move model.onnx into a version folder`);
  }
  return names.map((version) => {
    const modelFile = `${version}/model.onnx`;
    if (!statSync(join(dir, modelFile), { throwIfNoEntry: false })?.isFile()) {
      throw new DeclarationError(displayPath(join(dir, version)), 'version folder without model.onnx');
    }
    return { version, modelFile, docs: modelDocs(join(dir, modelFile)) };
  });
}

/** How resolveFunction was called: from a bundle, its folder name and its build's digest. */
export interface ResolveOptions {
  /** The function's folder name in the source tree (a bundle's folder is named otherwise). */
  folderName?: string;
  /**
   * The digest (declarationSnapshot) of the declaration the build checked: the same declaration
   * found at start is not checked again, and zod is not loaded for it.
   */
  checked?: string;
}

/**
 * Resolves a function from its folder and the declaration module it exports (if any),
 * checking the declaration (check.ts, loaded only when needed) and that the model file exists.
 * Used both from source and from bundles.
 */
export async function resolveFunction(
  dir: string,
  declaration: unknown,
  declarationFile: string | undefined,
  config: Pick<RuntimeConfig, 'bodyLimit' | 'timeoutMs'>,
  options: ResolveOptions = {},
): Promise<ResolvedFunction> {
  const absDir = resolve(dir);
  const versions = versionFolders(absDir);
  const file = declarationFile && displayPath(declarationFile);
  // With a bare model file, what the model documents itself is checked as part of the declaration.
  const whole = versions.length ? declaration : withModelDocs(absDir, declaration);
  // One copy of its data is digested, checked and used: nothing read later can differ from it.
  // The digest covers what the version folders' models document too (read once, above).
  const snapshot = declarationSnapshot({ declaration: whole, versionDocs: versions.map((v) => v.docs) });
  const declared = snapshot ? (snapshot.data as { declaration: unknown }).declaration : whole;
  let checked = declared as FunctionDeclaration | undefined;
  if (snapshot === undefined || snapshot.digest !== options.checked) {
    const check = await import('./check.ts');
    checked = check.checkDeclaration(declared, file ?? absDir);
    for (const v of versions) check.checkModelDocs(v.docs, displayPath(join(absDir, v.modelFile)));
  }
  const fn = completeDeclaration(checked, {
    dir: absDir,
    folderName: options.folderName ?? basename(absDir),
    declarationFile: file,
    versions,
  }, config);
  fn.checkedDigest = snapshot?.digest;
  if (!existsSync(fn.modelPath)) {
    const onnx = readdirSync(absDir).filter((f) => f.endsWith('.onnx'));
    const hint = !declarationFile && onnx.length === 1 ? `; found ${onnx[0]}: rename it to model.onnx or declare model: '${onnx[0]}'` : '';
    throw new DeclarationError(displayPath(fn.modelPath), `model file not found${hint}`);
  }
  if (!statSync(fn.modelPath).isFile()) throw new DeclarationError(displayPath(fn.modelPath), 'is not a file');
  // Custom routes are written against the function's inputs: a version without them would fail its clients.
  const broken = fn.routes && apiBreak(fn.versions);
  if (broken) throw new DeclarationError(displayPath(broken.file), broken.problem);
  for (const [route, doc] of Object.entries(fn.routeDocs)) {
    if (doc.exampleFile && !statSync(join(absDir, doc.exampleFile), { throwIfNoEntry: false })?.isFile()) {
      throw new DeclarationError(declarationFile ? displayPath(declarationFile) : displayPath(absDir), `routeDocs['${route}'].exampleFile: ${doc.exampleFile} is not a file in ${displayPath(absDir)}`);
    }
  }
  return fn;
}

/**
 * Where and why a declaration file failed to import, keeping the line and column: esbuild's
 * syntax errors arrive as "Transform failed with 1 error:" followed by `file:line:col: ERROR: ...`
 * lines, and errors thrown while the module runs name the place in their stack.
 *
 * @example loadFailure(err, 'functions/x/function.ts') // { where: 'functions/x/function.ts:2:0', reason: 'Expected "}" but found end of file' }
 */
export function loadFailure(err: unknown, file: string): { where: string; reason: string } {
  const message = String((err as Error)?.message ?? err).replace(/\u001b\[[0-9;]*m/g, '');
  // esbuild (tsx): `file:line:col: ERROR: text`; oxc (vite): `[CODE] text` then `[ file:line:col ]`.
  const esbuild = [...message.matchAll(/^(.+?):(\d+):(\d+): ERROR: (.*)$/gm)];
  if (esbuild.length) {
    const [, , line, column] = esbuild[0];
    return { where: `${displayPath(file)}:${line}:${column}`, reason: esbuild.map((m) => m[4]).join('; ') };
  }
  const oxc = /\[[A-Z_]+\]\s*(.+)[\s\S]*?\[\s*\S+?:(\d+):(\d+)\s*\]/.exec(message);
  if (oxc) return { where: `${displayPath(file)}:${oxc[2]}:${oxc[3]}`, reason: oxc[1].trim() };
  const first = message.split('\n')[0];
  // The first stack frame inside the declaration file says where a thrown error came from.
  const frame = String((err as Error)?.stack ?? '').split('\n').find((l) => l.includes(file));
  const at = frame && /:(\d+):(\d+)\)?\s*$/.exec(frame);
  return { where: at ? `${displayPath(file)}:${at[1]}:${at[2]}` : displayPath(file), reason: first };
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
      const { where, reason } = loadFailure(err, declarationFile);
      throw new DeclarationError(where, `cannot be loaded: ${reason}`);
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
    .filter((d) => findDeclarationFile(d) || readdirSync(d).some((f) => f.endsWith('.onnx')) || versionFolderNames(d).length > 0)
    .sort();
}
