/**
 * The documentation an ONNX file carries itself: the model's `doc_string` and its
 * `metadata_props` (ModelProto fields 6 and 14), and the facts the docs show: IR version,
 * producer and opsets (fields 1, 2-3 and 8). A folder holding only `model.onnx` takes its
 * description and example from there (`modelfn.example`: an inference request in JSON).
 *
 * Only the top level of the file is walked, with small reads: the graph, which holds the
 * weights, is skipped by its length, never read.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export interface OnnxMetadata {
  docString?: string;
  props: Record<string, string>;
  /** The file's ONNX IR version, the tool that wrote it, and the opset of each operator domain ('' is the default one). */
  irVersion?: number;
  producer?: string;
  opsets: Record<string, number>;
  /** The file's size in bytes. */
  bytes?: number;
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

const IR_VERSION = 1;
const PRODUCER_NAME = 2;
const PRODUCER_VERSION = 3;
const DOC_STRING = 6;
const OPSET_IMPORT = 8;
const METADATA_PROPS = 14;

/** An OperatorSetIdProto: its domain (field 1) and version (field 2, a varint). */
function opset(buf: Uint8Array): [string, number] {
  let domain = '';
  let version = 0;
  let pos = 0;
  while (pos < buf.length) {
    const [key, afterKey] = varint(buf, pos);
    if ((key & 7) === 0) {
      const [value, next] = varint(buf, afterKey);
      if (key >>> 3 === 2) version = value;
      pos = next;
    } else if ((key & 7) === 2) {
      const [length, start] = varint(buf, afterKey);
      if (key >>> 3 === 1) domain = new TextDecoder().decode(buf.subarray(start, start + length));
      pos = start + length;
    } else break;
  }
  return [domain, version];
}
/** Strings larger than this are not documentation. */
const MAX_TEXT = 1024 * 1024;

/**
 * The doc string and metadata properties of an ONNX file; empty when it has none or is not a
 * readable model (loading the model reports that properly).
 *
 * @example readOnnxMetadata('functions/digits/model.onnx').props['modelfn.example']
 */
export function readOnnxMetadata(path: string): OnnxMetadata {
  const meta: OnnxMetadata = { props: {}, opsets: {} };
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return meta;
  }
  const decoder = new TextDecoder();
  try {
    const size = fstatSync(fd).size;
    meta.bytes = size;
    const head = Buffer.alloc(20);
    let pos = 0;
    while (pos < size) {
      const got = readSync(fd, head, 0, head.length, pos);
      const [key, afterKey] = varint(head.subarray(0, got), 0);
      const wire = key & 7;
      if (wire === 0) {
        const [value, next] = varint(head.subarray(0, got), afterKey);
        if (key >>> 3 === IR_VERSION) meta.irVersion = value;
        pos += next;
      }
      else if (wire === 1) pos += afterKey + 8;
      else if (wire === 5) pos += afterKey + 4;
      else if (wire === 2) {
        const [length, start] = varint(head.subarray(0, got), afterKey);
        const field = key >>> 3;
        if ((field === DOC_STRING || field === METADATA_PROPS || field === PRODUCER_NAME || field === PRODUCER_VERSION || field === OPSET_IMPORT) && length <= MAX_TEXT) {
          const body = Buffer.alloc(length);
          readSync(fd, body, 0, length, pos + start);
          if (field === DOC_STRING) meta.docString = decoder.decode(body);
          else if (field === PRODUCER_NAME) meta.producer = `${decoder.decode(body)}${meta.producer ?? ''}`;
          else if (field === PRODUCER_VERSION) meta.producer = `${meta.producer ?? ''} ${decoder.decode(body)}`;
          else if (field === OPSET_IMPORT) {
            const [domain, version] = opset(body);
            meta.opsets[domain] = version;
          } else {
            const entry = Object.fromEntries(fields(body));
            if (entry[1]) meta.props[decoder.decode(entry[1])] = entry[2] ? decoder.decode(entry[2]) : '';
          }
        }
        pos += start + length;
      } else break;
    }
    if (meta.producer !== undefined) meta.producer = meta.producer.trim();
  } catch {
    // Not a protobuf we can walk: no metadata.
  } finally {
    closeSync(fd);
  }
  return meta;
}

const GRAPH = 7;
const GRAPH_INPUT = 11;

/** A graph input as the file declares it: its name and ONNX element type (1 is float, 7 int64...). */
export interface OnnxInput {
  name: string;
  elemType?: number;
  /** Dimensions; -1 for a dynamic one. */
  shape?: number[];
}

/**
 * Walks the top-level fields of the file's graph (ModelProto field 7) with small reads, calling
 * `visit` with each length-delimited field's number and place, and `walk` to go inside one. False
 * when the file cannot be walked or has no graph.
 */
function walkGraph(path: string, visit: (field: number, start: number, length: number, file: GraphFile) => void): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false;
  }
  const head = Buffer.alloc(20);
  const walk = (from: number, to: number, inner: (field: number, start: number, length: number) => void) => {
    let pos = from;
    while (pos < to) {
      const got = readSync(fd, head, 0, Math.min(head.length, to - pos), pos);
      const view = head.subarray(0, got);
      const [key, afterKey] = varint(view, 0);
      const wire = key & 7;
      if (wire === 0) pos += varint(view, afterKey)[1];
      else if (wire === 1) pos += afterKey + 8;
      else if (wire === 5) pos += afterKey + 4;
      else if (wire === 2) {
        const [length, start] = varint(view, afterKey);
        inner(key >>> 3, pos + start, length);
        pos += start + length;
      } else throw new Error(`unsupported wire type ${wire}`);
    }
  };
  const file: GraphFile = {
    walk,
    read(start, length) {
      const body = Buffer.alloc(length);
      readSync(fd, body, 0, length, start);
      return body;
    },
  };
  try {
    let graphs = 0;
    walk(0, fstatSync(fd).size, (field, start, length) => {
      if (field !== GRAPH) return;
      graphs++;
      walk(start, start + length, (graphField, fieldStart, fieldLength) => visit(graphField, fieldStart, fieldLength, file));
    });
    return graphs > 0;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

interface GraphFile {
  walk(from: number, to: number, inner: (field: number, start: number, length: number) => void): void;
  read(start: number, length: number): Buffer;
}

/**
 * The graph's declared inputs (GraphProto field 11), read with small reads: the graph's other
 * fields (nodes, weights) are skipped by their length. Used by the build to compare the versions
 * of a function without loading onnxruntime. Undefined when the file cannot be walked.
 *
 * @example readOnnxInputs('functions/iris/model.onnx') // [{ name: 'input', elemType: 1, shape: [-1, 4] }]
 */
export function readOnnxInputs(path: string): OnnxInput[] | undefined {
  const inputs: OnnxInput[] = [];
  const walked = walkGraph(path, (field, start, length, file) => {
    if (field !== GRAPH_INPUT || length > MAX_TEXT) return;
    const info = Object.fromEntries(fields(file.read(start, length)));
    // ValueInfoProto: name (1), type (2: TypeProto, whose field 1 is a tensor type whose varint field 1 is the element type).
    const tensorType = info[2] && Object.fromEntries(fields(info[2]))[1];
    inputs.push({ name: new TextDecoder().decode(info[1] ?? new Uint8Array()), ...(tensorType ? tensorTypeOf(tensorType) : {}) });
  });
  return walked ? inputs : undefined;
}

const GRAPH_NODE = 1;
const NODE_OP_TYPE = 4;
const NODE_DOMAIN = 7;

/**
 * The operators of the graph's top-level nodes (GraphProto field 1), each as `op_type`, or
 * `domain:op_type` outside the default domain; the nodes' attributes (which may hold tensors) are
 * skipped by their length. Undefined when the file cannot be walked, or has more than `maxNodes`
 * nodes.
 *
 * @example readOnnxOperators('functions/iris/model.onnx') // ['ai.onnx.ml:LinearClassifier', ...]
 */
export function readOnnxOperators(path: string, maxNodes = Infinity): string[] | undefined {
  const operators = new Set<string>();
  const decoder = new TextDecoder();
  let nodes = 0;
  const walked = walkGraph(path, (field, start, length, file) => {
    if (field !== GRAPH_NODE) return;
    if (++nodes > maxNodes) throw new Error('too many nodes');
    let op = '';
    let domain = '';
    file.walk(start, start + length, (nodeField, fieldStart, fieldLength) => {
      if (nodeField === NODE_OP_TYPE && fieldLength <= 256) op = decoder.decode(file.read(fieldStart, fieldLength));
      else if (nodeField === NODE_DOMAIN && fieldLength <= 256) domain = decoder.decode(file.read(fieldStart, fieldLength));
    });
    operators.add(domain && domain !== 'ai.onnx' ? `${domain}:${op}` : op);
  });
  return walked ? [...operators] : undefined;
}

/** A TypeProto.Tensor's element type (varint field 1) and shape (field 2: dims, each a dim_value or a named dim_param). */
function tensorTypeOf(tensor: Uint8Array): Pick<OnnxInput, 'elemType' | 'shape'> {
  const out: Pick<OnnxInput, 'elemType' | 'shape'> = {};
  let pos = 0;
  while (pos < tensor.length) {
    const [key, afterKey] = varint(tensor, pos);
    if ((key & 7) === 0) {
      const [value, next] = varint(tensor, afterKey);
      if (key >>> 3 === 1) out.elemType = value;
      pos = next;
    } else if ((key & 7) === 2) {
      const [length, start] = varint(tensor, afterKey);
      if (key >>> 3 === 2) {
        out.shape = fields(tensor.subarray(start, start + length)).filter(([f]) => f === 1).map(([, dim]) => {
          // A dim_value is varint field 1; a dim_param (field 2) or nothing is a dynamic dimension.
          return dim.length && dim[0] === 0x08 ? varint(dim, 1)[0] : -1;
        });
      }
      pos = start + length;
    } else break;
  }
  return out;
}
