// The project's import graph: no cycle anywhere in its source, and runtime/'s layers import only
// from layers below them. Read from the files themselves (static and dynamic relative imports).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../runtime/testing/index.ts';

/** Folders of source; the top-level build.ts is the one file outside them. */
const SOURCE_DIRS = ['runtime', 'builder', 'cli', 'functions', 'bench', 'test', 'scripts', 'bin'];
/** runtime/'s layers, lowest first: a layer may import its own folder and the ones before it. */
const LAYERS = ['core', 'tensor', 'engine', 'function', 'pages', 'http', 'serve', 'gateway', 'testing'];

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    if (entry === 'node_modules' || entry === 'fixtures' || entry === 'templates') continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (/\.(ts|mts|mjs)$/.test(entry)) out.push(path);
  }
  return out;
}

/** The relative imports of one file (static, re-exports and dynamic), resolved. */
function importsOf(file: string, text: string): string[] {
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"](\.{1,2}\/[^'"]+\.(?:ts|mts|mjs))['"]/g)].map((m) => m[1]);
  return specs.map((s) => resolve(dirname(file), s));
}

/** One cycle through the graph, if there is any (depth-first search with colours). */
function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | undefined => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') return [...stack.slice(stack.indexOf(next)), next];
      if (!state.has(next)) {
        const found = visit(next);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of graph.keys()) {
    if (!state.has(node)) {
      const found = visit(node);
      if (found) return found;
    }
  }
  return undefined;
}

const files = [...SOURCE_DIRS.flatMap((d) => sourceFiles(join(ROOT, d))), join(ROOT, 'build.ts')];
const graph = new Map(files.map((f) => [f, importsOf(f, readFileSync(f, 'utf8'))]));
const rel = (f: string) => relative(ROOT, f);

describe('import graph', () => {
  it('finds a cycle when there is one, and names its files', () => {
    expect(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]]))).toEqual(['a', 'b', 'c', 'a']);
    expect(findCycle(new Map([['a', ['b', 'c']], ['b', ['c']], ['c', []]]))).toBeUndefined();
  });

  it('reads static, re-exported and dynamic relative imports', () => {
    // Q stands for a quote, so that this file's own text holds no import of these names.
    const text = 'import a from Q./a.tsQ;\nexport { b } from Q../b.tsQ;\nconst c = await import(Q./c.mjsQ);\nimport Q./d.tsQ;\nimport Qnode:fsQ;'.replace(/Q/g, "'");
    expect(importsOf('/p/x/f.ts', text)).toEqual(['/p/x/a.ts', '/p/b.ts', '/p/x/c.mjs', '/p/x/d.ts']);
  });

  it('has no cycle in the project source', () => {
    expect(files.length).toBeGreaterThan(50);
    const cycle = findCycle(graph);
    expect(cycle?.map(rel).join(' -> ')).toBeUndefined();
  });

  it("keeps runtime/'s layers in order, and runtime/ free of builder/ and cli/", () => {
    const wrong: string[] = [];
    for (const [file, imports] of graph) {
      const [top, layer] = rel(file).split('/');
      // Tests may use runtime/testing's helpers whatever layer they test.
      if (top !== 'runtime' || file.endsWith('.test.ts')) continue;
      for (const target of imports) {
        const [targetTop, targetLayer] = rel(target).split('/');
        if (targetTop !== 'runtime') wrong.push(`${rel(file)} imports ${rel(target)} (outside runtime/)`);
        else if (LAYERS.includes(layer) && LAYERS.indexOf(targetLayer) > LAYERS.indexOf(layer)) {
          wrong.push(`${rel(file)} (${layer}) imports ${rel(target)} (${targetLayer}, a higher layer)`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it('has every imported file', () => {
    const missing = [...graph].flatMap(([file, imports]) => imports.filter((t) => !graph.has(t)).map((t) => `${rel(file)} -> ${rel(t)}`));
    expect(missing).toEqual([]);
  });
});
