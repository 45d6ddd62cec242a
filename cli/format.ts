/**
 * Text for people: tables and JSON that reads well in a terminal.
 */

const scalar = (v: unknown) => v === null || typeof v !== 'object';

function flat(v: unknown): string {
  if (scalar(v)) return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(flat).join(', ')}]`;
  return `{${Object.entries(v as object).map(([k, x]) => `${JSON.stringify(k)}: ${flat(x)}`).join(', ')}}`;
}

/**
 * JSON with what fits in `width` on one line, and long lists of numbers wrapped like text.
 *
 * @example formatJson({ predictions: [[0.1, 0.9]] }) // '{"predictions": [[0.1, 0.9]]}'
 */
export function formatJson(v: unknown, width = 100, indent = ''): string {
  const one = flat(v);
  if (scalar(v) || indent.length + one.length <= width) return one;
  const inner = `${indent}  `;
  if (Array.isArray(v)) {
    if (v.every(scalar)) {
      const lines: string[] = [];
      let line = '';
      for (const x of v) {
        const item = JSON.stringify(x) ?? 'null';
        if (line && inner.length + line.length + item.length + 2 > width) {
          lines.push(`${line},`);
          line = '';
        }
        line += (line ? ', ' : '') + item;
      }
      lines.push(line);
      return `[\n${lines.map((l) => inner + l).join('\n')}\n${indent}]`;
    }
    return `[\n${v.map((x) => inner + formatJson(x, width, inner)).join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(v as object).map(([k, x]) => `${inner}${JSON.stringify(k)}: ${formatJson(x, width, inner)}`);
  return `{\n${entries.join(',\n')}\n${indent}}`;
}

/**
 * A plain-text table; a cell given as a list takes one line per item.
 *
 * @example table(['name', 'prefix'], [['iris', '/iris']])
 */
export function table(header: string[], rows: (string | string[])[][]): string {
  const cells = rows.map((row) => row.map((c) => (Array.isArray(c) ? c : [c])));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.flatMap((row) => row[i].map((line) => line.length))));
  const line = (parts: string[]) => parts.map((p, i) => p.padEnd(widths[i])).join('  ').trimEnd();
  const out = [line(header.map((h) => h.toUpperCase()))];
  for (const row of cells) {
    const height = Math.max(...row.map((c) => c.length));
    for (let i = 0; i < height; i++) out.push(line(row.map((c) => c[i] ?? '')));
  }
  return `${out.join('\n')}\n`;
}

/** `input FP32 [-1, 4]`. */
export function tensorText(t: { name: string; datatype: string; shape: readonly number[] }): string {
  return `${t.name} ${t.datatype} [${t.shape.join(', ')}]`;
}
