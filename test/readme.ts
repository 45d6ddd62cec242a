/**
 * Reading the README as its tests need it: the fenced blocks, the examples marked with
 * `<!-- readme-test -->` and the answers shown under them, and the Quickstart's command.
 */
import { expect } from 'vitest';

export interface Block {
  lang: string;
  text: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The `<!-- readme-test[: kind] -->` marker just above the block, if any. */
  marker?: string;
}

/** Every fenced block, with the marker written on the line (blank lines aside) above it. */
export function fencedBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const end = lines.indexOf('```', i + 1);
    if (end < 0) throw new Error(`README line ${i + 1}: a fence that is never closed`);
    let above = i - 1;
    while (above >= 0 && lines[above].trim() === '') above--;
    const marker = /^<!-- readme-test(?::\s*(.*?))?\s*-->$/.exec(lines[above] ?? '');
    blocks.push({ lang: open[1], text: lines.slice(i + 1, end).join('\n'), line: i + 1, marker: marker ? (marker[1] ?? 'answer') : undefined });
    i = end;
  }
  return blocks;
}

export interface CurlExample {
  line: number;
  command: string;
  /** The answer shown in the README, or undefined when only a successful JSON answer is expected. */
  expected?: string;
}

/** The marked curl examples, each with the ```json answer that follows it. */
export function curlExamples(markdown: string): CurlExample[] {
  const blocks = fencedBlocks(markdown);
  return blocks.flatMap((block, i) => {
    if (block.marker !== 'answer' && block.marker !== 'ok') return [];
    if (block.lang !== 'sh') throw new Error(`README line ${block.line}: a readme-test marker above a ${block.lang || 'plain'} block`);
    const next = blocks[i + 1];
    if (block.marker === 'answer' && next?.lang !== 'json') throw new Error(`README line ${block.line}: the example has no \`\`\`json answer after it`);
    return [{ line: block.line, command: block.text, expected: block.marker === 'answer' ? next.text : undefined }];
  });
}

/** The set-up and start command: the first sh block under "## Quickstart". */
export function quickstartCommand(markdown: string): string {
  const section = markdown.slice(markdown.indexOf('\n## Quickstart'));
  const block = fencedBlocks(section).find((b) => b.lang === 'sh');
  if (!block) throw new Error('README: no sh block under ## Quickstart');
  return block.text.trim();
}

/** Decimal places a number was written with (`0.9816` → 4, `3` → 0, `1e-7` → 7). */
function decimals(n: number): number {
  const [mantissa, exponent] = String(n).split('e');
  const places = (mantissa.split('.')[1] ?? '').length;
  return Math.max(0, places - Number(exponent ?? 0));
}

/**
 * Asserts that an answer is the one the README shows: the same keys and lengths everywhere,
 * equal strings, and numbers equal to the precision the README writes them with.
 */
export function expectShown(actual: unknown, shown: unknown, where = 'answer'): void {
  if (typeof shown === 'number') {
    expect(typeof actual, where).toBe('number');
    const d = decimals(shown);
    expect(Number((actual as number).toFixed(d)), `${where}: ${actual} written as ${shown}`).toBe(shown);
  } else if (Array.isArray(shown)) {
    expect(Array.isArray(actual), `${where} is a list`).toBe(true);
    expect((actual as unknown[]).length, `${where} length`).toBe(shown.length);
    shown.forEach((s, i) => expectShown((actual as unknown[])[i], s, `${where}[${i}]`));
  } else if (shown && typeof shown === 'object') {
    expect(actual && typeof actual === 'object' && !Array.isArray(actual), `${where} is an object`).toBe(true);
    expect(Object.keys(actual as object), `${where} keys`).toEqual(Object.keys(shown));
    for (const [k, s] of Object.entries(shown)) expectShown((actual as Record<string, unknown>)[k], s, `${where}.${k}`);
  } else {
    expect(actual, where).toEqual(shown);
  }
}
