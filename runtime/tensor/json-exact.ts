/**
 * JSON with exact 64-bit integers. JSON.parse turns an integer beyond ±2^53 into the nearest
 * double, silently; INT64 and UINT64 tensors need the digits as sent. The common path keeps
 * JSON.parse: a decoder that meets such a number throws InexactIntegerError, and only then is
 * the text read again here, with those integers as BigInt.
 */
import { ModelfnError, invalidInput } from '../core/errors.ts';

/**
 * A JSON number stood for an integer that a double cannot hold exactly. Thrown by the tensor
 * decoder; `withExactIntegers` answers it by reading the text again. Its message is the
 * client's answer when the number was not plain digits (`1e20`, `9007199254740993.0`).
 */
export class InexactIntegerError extends ModelfnError {
  override name = 'InexactIntegerError';
  constructor(message: string) {
    super('invalid_input', message);
  }
}

// Only runs on text JSON.parse has accepted, so the grammar is known to hold.
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

/**
 * Parses JSON text that JSON.parse accepts, giving integers written as plain digits beyond
 * ±2^53 as BigInt; every other value is what JSON.parse gives.
 *
 * @example parseJsonExact('[9007199254740993, 1]') // [9007199254740993n, 1]
 */
export function parseJsonExact(text: string): unknown {
  let pos = 0;
  const space = () => {
    for (let c = text.charCodeAt(pos); c === 32 || c === 9 || c === 10 || c === 13; c = text.charCodeAt(++pos));
  };
  const string = (): string => {
    const start = pos;
    let escaped = false;
    for (pos++; text[pos] !== '"'; pos++) {
      if (text[pos] === '\\') {
        escaped = true;
        pos++;
      }
    }
    pos++;
    return escaped ? (JSON.parse(text.slice(start, pos)) as string) : text.slice(start + 1, pos - 1);
  };
  const value = (): unknown => {
    space();
    const c = text[pos];
    if (c === '{') {
      pos++;
      const object: Record<string, unknown> = {};
      space();
      if (text[pos] === '}') return pos++, object;
      for (;;) {
        space();
        const key = string();
        space();
        pos++; // ':'
        // A plain assignment to "__proto__" would set the prototype; JSON.parse makes a property.
        Object.defineProperty(object, key, { value: value(), enumerable: true, writable: true, configurable: true });
        space();
        if (text[pos++] === '}') return object;
      }
    }
    if (c === '[') {
      pos++;
      const array: unknown[] = [];
      space();
      if (text[pos] === ']') return pos++, array;
      for (;;) {
        array.push(value());
        space();
        if (text[pos++] === ']') return array;
      }
    }
    if (c === '"') return string();
    if (c === 't') return (pos += 4), true;
    if (c === 'f') return (pos += 5), false;
    if (c === 'n') return (pos += 4), null;
    NUMBER.lastIndex = pos;
    const match = NUMBER.exec(text)!;
    pos = NUMBER.lastIndex;
    const n = Number(match[0]);
    return match[1] === undefined && match[2] === undefined && !Number.isSafeInteger(n) ? BigInt(match[0]) : n;
  };
  return value();
}

/**
 * Runs `decode` on the parsed JSON; when it meets an integer JSON.parse could not hold exactly,
 * runs it once more on the text read with parseJsonExact.
 *
 * @example withExactIntegers(text, JSON.parse(text), (json) => decodeRequest(json))
 */
export function withExactIntegers<T>(text: string, json: unknown, decode: (json: unknown) => T): T {
  try {
    return decode(json);
  } catch (err) {
    if (!(err instanceof InexactIntegerError)) throw err;
  }
  let exact: unknown;
  try {
    exact = parseJsonExact(text);
  } catch (err) {
    // JSON.parse is not recursive; this reader is, and a request may nest deeper than its stack.
    if (err instanceof RangeError) throw invalidInput('request JSON is nested too deeply');
    throw err;
  }
  return decode(exact);
}

/**
 * JSON text of a value that may hold BigInts (written as their digits), for answers carrying
 * 64-bit integers beyond ±2^53.
 *
 * @example stringifyExact({ ids: [9007199254740993n] }) // '{"ids":[9007199254740993]}'
 */
export function stringifyExact(value: unknown): string {
  if (typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return `[${value.map(stringifyExact).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${stringifyExact(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
