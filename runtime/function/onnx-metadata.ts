/**
 * The documentation an ONNX file carries itself: the model's `doc_string` and its
 * `metadata_props` (ModelProto fields 6 and 14). A folder holding only `model.onnx` takes its
 * description and example from there (`modelfn.example`: an inference request in JSON).
 *
 * Only the top level of the file is walked, with small reads: the graph, which holds the
 * weights, is skipped by its length, never read.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export interface OnnxMetadata {
  docString?: string;
  props: Record<string, string>;
}

/** Reads a protobuf varint at `pos`; returns the value and the position after it. */
function varint(buf: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = pos; i < buf.length && i < pos + 10; i++) {
    value += (buf[i] & 0x7f) * scale;
    if (buf[i] < 0x80) return [value, i + 1];
    scale *= 128;
  }
  throw new Error('malformed varint');
}

/** The (field, bytes) pairs of a small message held in memory. */
function fields(buf: Uint8Array): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, afterKey] = varint(buf, pos);
    const wire = key & 7;
    if (wire === 0) pos = varint(buf, afterKey)[1];
    else if (wire === 1) pos = afterKey + 8;
    else if (wire === 5) pos = afterKey + 4;
    else if (wire === 2) {
      const [length, start] = varint(buf, afterKey);
      out.push([key >>> 3, buf.subarray(start, start + length)]);
      pos = start + length;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

const DOC_STRING = 6;
const METADATA_PROPS = 14;
/** Strings larger than this are not documentation. */
const MAX_TEXT = 1024 * 1024;

/**
 * The doc string and metadata properties of an ONNX file; empty when it has none or is not a
 * readable model (loading the model reports that properly).
 *
 * @example readOnnxMetadata('functions/digits/model.onnx').props['modelfn.example']
 */
export function readOnnxMetadata(path: string): OnnxMetadata {
  const meta: OnnxMetadata = { props: {} };
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return meta;
  }
  const decoder = new TextDecoder();
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(20);
    let pos = 0;
    while (pos < size) {
      const got = readSync(fd, head, 0, head.length, pos);
      const [key, afterKey] = varint(head.subarray(0, got), 0);
      const wire = key & 7;
      if (wire === 0) pos += varint(head.subarray(0, got), afterKey)[1];
      else if (wire === 1) pos += afterKey + 8;
      else if (wire === 5) pos += afterKey + 4;
      else if (wire === 2) {
        const [length, start] = varint(head.subarray(0, got), afterKey);
        const field = key >>> 3;
        if ((field === DOC_STRING || field === METADATA_PROPS) && length <= MAX_TEXT) {
          const body = Buffer.alloc(length);
          readSync(fd, body, 0, length, pos + start);
          if (field === DOC_STRING) meta.docString = decoder.decode(body);
          else {
            const entry = Object.fromEntries(fields(body));
            if (entry[1]) meta.props[decoder.decode(entry[1])] = entry[2] ? decoder.decode(entry[2]) : '';
          }
        }
        pos += start + length;
      } else break;
    }
  } catch {
    // Not a protobuf we can walk: no metadata.
  } finally {
    closeSync(fd);
  }
  return meta;
}
