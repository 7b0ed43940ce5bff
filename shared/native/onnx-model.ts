/**
 * ONNX models written as protobuf bytes in memory: what the native backend hands onnxruntime
 * as a session (one Gemm with its transposes folded in; a Dense stack's forward or backward
 * pass). Only the fields those models use are written (onnx.proto3 field numbers); dimensions
 * may be symbolic, so one session serves every batch size.
 */

/** A protobuf message under construction (wire types 0 varint, 2 length-delimited, 5 32-bit). */
class ProtoWriter {
  private readonly bytes: number[] = [];

  private varint(value: number): void {
    let v = BigInt(value);
    if (v < 0n) v += 1n << 64n;
    while (v >= 0x80n) {
      this.bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.bytes.push(Number(v));
  }

  private key(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  int(field: number, value: number): this {
    this.key(field, 0);
    this.varint(value);
    return this;
  }

  float(field: number, value: number): this {
    this.key(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.bytes.push(...b);
    return this;
  }

  string(field: number, value: string): this {
    return this.raw(field, new TextEncoder().encode(value));
  }

  message(field: number, message: ProtoWriter): this {
    return this.raw(field, message.finish());
  }

  raw(field: number, payload: Uint8Array): this {
    this.key(field, 2);
    this.varint(payload.length);
    for (const b of payload) this.bytes.push(b);
    return this;
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

/** TensorProto.DataType FLOAT, INT64. */
const FLOAT = 1;
const INT64 = 7;
/** AttributeProto.AttributeType. */
const ATTRIBUTE_FLOAT = 1;
const ATTRIBUTE_INT = 2;
const ATTRIBUTE_STRING = 3;
const ATTRIBUTE_INTS = 7;

export type Dim = number | string;
export type Attribute = number | { readonly float: number } | { readonly ints: readonly number[] } | { readonly string: string };

export interface OnnxNode {
  readonly op: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes?: Readonly<Record<string, Attribute>>;
  /** An operator set other than ONNX's own ('com.microsoft' for onnxruntime's contrib operators). */
  readonly domain?: string;
}

/** A constant of the graph: float32 values, or int64 ones (an operator's axes). */
export interface OnnxConstant {
  readonly dims: readonly number[];
  readonly float?: readonly number[];
  readonly int64?: readonly number[];
}

export interface OnnxGraph {
  readonly nodes: readonly OnnxNode[];
  readonly constants?: Readonly<Record<string, OnnxConstant>>;
  /** ONNX's operator set (default 17). */
  readonly opset?: number;
  /** Inputs and outputs by name, with their dimensions (a string: a symbolic dimension); float32 unless named in `int64`. */
  readonly inputs: Readonly<Record<string, readonly Dim[]>>;
  readonly outputs: Readonly<Record<string, readonly Dim[]>>;
  readonly int64?: readonly string[];
}

function valueInfo(name: string, dims: readonly Dim[], int64: boolean): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dims) shape.message(1, typeof d === 'string' ? new ProtoWriter().string(2, d) : new ProtoWriter().int(1, d));
  const tensorType = new ProtoWriter().int(1, int64 ? INT64 : FLOAT).message(2, shape);
  return new ProtoWriter().string(1, name).message(2, new ProtoWriter().message(1, tensorType));
}

function attribute(name: string, value: Attribute): ProtoWriter {
  const a = new ProtoWriter().string(1, name);
  if (typeof value === 'number') return a.int(3, value).int(20, ATTRIBUTE_INT);
  if ('float' in value) return a.float(2, value.float).int(20, ATTRIBUTE_FLOAT);
  if ('string' in value) return a.string(4, value.string).int(20, ATTRIBUTE_STRING);
  for (const v of value.ints) a.int(8, v);
  return a.int(20, ATTRIBUTE_INTS);
}

function constant(name: string, c: OnnxConstant): ProtoWriter {
  const t = new ProtoWriter();
  for (const d of c.dims) t.int(1, d);
  t.int(2, c.int64 ? INT64 : FLOAT).string(8, name);
  const raw = c.int64 ? new Uint8Array(BigInt64Array.from(c.int64, (v) => BigInt(v)).buffer) : new Uint8Array(Float32Array.from(c.float ?? []).buffer);
  return t.raw(9, raw);
}

/** The serialized ModelProto (IR version 8, ONNX's opset (17 unless the graph says) and onnxruntime's contrib opset 1). */
export function onnxModel(graph: OnnxGraph): Uint8Array {
  const g = new ProtoWriter();
  graph.nodes.forEach((node, i) => {
    const n = new ProtoWriter();
    for (const input of node.inputs) n.string(1, input);
    for (const output of node.outputs) n.string(2, output);
    n.string(3, `${node.op}_${i}`).string(4, node.op);
    for (const [name, value] of Object.entries(node.attributes ?? {})) n.message(5, attribute(name, value));
    if (node.domain) n.string(7, node.domain);
    g.message(1, n);
  });
  g.string(2, 'dptrain');
  for (const [name, c] of Object.entries(graph.constants ?? {})) g.message(5, constant(name, c));
  const int64 = new Set(graph.int64 ?? []);
  for (const [name, dims] of Object.entries(graph.inputs)) g.message(11, valueInfo(name, dims, int64.has(name)));
  for (const [name, dims] of Object.entries(graph.outputs)) g.message(12, valueInfo(name, dims, int64.has(name)));
  return new ProtoWriter()
    .int(1, 8)
    .string(2, 'dptrain')
    .message(7, g)
    .message(8, new ProtoWriter().string(1, '').int(2, graph.opset ?? 17))
    .message(8, new ProtoWriter().string(1, 'com.microsoft').int(2, 1))
    .finish();
}
