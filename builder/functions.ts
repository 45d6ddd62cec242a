/**
 * Discovering every function and validating all declarations at once, so the build reports
 * every problem in one list.
 */
import { basename } from 'node:path';
import type { RuntimeConfig } from '../runtime/core/config.ts';
import type { ResolvedFunction } from '../runtime/function/define.ts';
import { displayPath, listFunctionDirs, loadFunctionDir } from '../runtime/function/discover.ts';
import { functionSetProblems } from '../runtime/function/validate.ts';

export interface Discovery {
  functions: ResolvedFunction[];
  problems: string[];
}

/**
 * Loads every function folder under `root` and checks them together: declarations, models,
 * and the set's names and prefixes (runtime/function/validate.ts).
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
  problems.push(...functionSetProblems(functions));
  return { functions: functions.sort((a, b) => a.name.localeCompare(b.name)), problems };
}

/** The folder name a function was found in. */
export function folderOf(fn: ResolvedFunction): string {
  return basename(fn.dir);
}
