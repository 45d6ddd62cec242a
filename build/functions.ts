/**
 * Discovering every function and validating all declarations at once, so the build reports
 * every problem in one list.
 */
import { basename } from 'node:path';
import type { RuntimeConfig } from '../runtime/core/config.ts';
import type { ResolvedFunction } from '../runtime/function/define.ts';
import { displayPath, findDeclarationFile, listFunctionDirs, loadFunctionDir } from '../runtime/function/discover.ts';

/** Paths the gateway answers itself; no function prefix may take them. */
export const RESERVED_PREFIXES = ['/v2', '/metrics', '/docs', '/_modelfn'];

export interface Discovery {
  functions: ResolvedFunction[];
  problems: string[];
}

/**
 * Loads every function folder under `root` and checks them together: declarations, models,
 * names and prefixes that collide.
 *
 * @example const { functions, problems } = await discoverFunctions('functions', readConfig());
 */
export async function discoverFunctions(root: string, config: Pick<RuntimeConfig, 'bodyLimit' | 'timeoutMs'>): Promise<Discovery> {
  const functions: ResolvedFunction[] = [];
  const problems: string[] = [];
  const dirs = listFunctionDirs(root);
  if (dirs.length === 0) problems.push(`${displayPath(root)}: no functions found (a function is a folder holding model.onnx)`);
  for (const dir of dirs) {
    try {
      functions.push(await loadFunctionDir(dir, config));
    } catch (err) {
      problems.push(err instanceof Error ? err.message : String(err));
    }
  }
  const byName = new Map<string, ResolvedFunction>();
  const byPrefix = new Map<string, ResolvedFunction>();
  const where = (fn: ResolvedFunction) => displayPath(fn.declarationFile ?? findDeclarationFile(fn.dir) ?? fn.dir);
  for (const fn of functions) {
    const sameName = byName.get(fn.name);
    if (sameName) problems.push(`${where(fn)}: name '${fn.name}' is also the name of ${where(sameName)}`);
    else byName.set(fn.name, fn);
    const samePrefix = byPrefix.get(fn.prefix);
    if (samePrefix) problems.push(`${where(fn)}: prefix '${fn.prefix}' is also the prefix of ${where(samePrefix)}`);
    else byPrefix.set(fn.prefix, fn);
    const reserved = RESERVED_PREFIXES.find((r) => fn.prefix === r || fn.prefix.startsWith(`${r}/`));
    if (reserved) problems.push(`${where(fn)}: prefix '${fn.prefix}' is reserved for the gateway (${reserved})`);
  }
  for (const a of functions) {
    for (const b of functions) {
      if (a !== b && b.prefix.startsWith(`${a.prefix}/`)) problems.push(`${where(b)}: prefix '${b.prefix}' is inside '${a.prefix}' of ${where(a)}`);
    }
  }
  return { functions: functions.sort((a, b) => a.name.localeCompare(b.name)), problems };
}

/** The folder name a function was found in. */
export function folderOf(fn: ResolvedFunction): string {
  return basename(fn.dir);
}
