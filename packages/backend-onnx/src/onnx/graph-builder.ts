import {
  type AttributeMessage,
  type GraphMessage,
  type NodeMessage,
  ONNX_ATTRIBUTE_TYPE,
  ONNX_DATA_TYPE,
  type TensorMessage,
  type ValueInfoMessage,
} from './onnx-proto.js';

export type AttributeValue = number | string | readonly number[] | { readonly float: number } | TensorMessage;
export type Dimension = number | string;
export type ElementType = 'float32' | 'float16' | 'int64';

const ELEMENT_TYPES: Record<ElementType, number> = {
  float32: ONNX_DATA_TYPE.FLOAT,
  float16: ONNX_DATA_TYPE.FLOAT16,
  int64: ONNX_DATA_TYPE.INT64,
};

function attribute(name: string, value: AttributeValue): AttributeMessage {
  if (typeof value === 'number') return { name, type: ONNX_ATTRIBUTE_TYPE.INT, i: value };
  if (typeof value === 'string') {
    return { name, type: ONNX_ATTRIBUTE_TYPE.STRING, s: new TextEncoder().encode(value) };
  }
  if (Array.isArray(value)) return { name, type: ONNX_ATTRIBUTE_TYPE.INTS, ints: value as number[] };
  if ('float' in value) return { name, type: ONNX_ATTRIBUTE_TYPE.FLOAT, f: value.float };
  return { name, type: ONNX_ATTRIBUTE_TYPE.TENSOR, t: value as TensorMessage };
}

function valueInfo(name: string, type: ElementType, shape: readonly Dimension[]): ValueInfoMessage {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEMENT_TYPES[type],
        shape: {
          dim: shape.map((dimension) =>
            typeof dimension === 'number' ? { dimValue: dimension } : { dimParam: dimension },
          ),
        },
      },
    },
  };
}

export function float32TensorMessage(
  name: string,
  dims: readonly number[],
  data: Float32Array,
): TensorMessage {
  return {
    name,
    dims,
    dataType: ONNX_DATA_TYPE.FLOAT,
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

export function int64TensorMessage(
  name: string,
  dims: readonly number[],
  data: readonly number[],
): TensorMessage {
  const values = BigInt64Array.from(data, (value) => BigInt(value));
  return { name, dims, dataType: ONNX_DATA_TYPE.INT64, rawData: new Uint8Array(values.buffer) };
}

/**
 * Collects nodes, inputs, outputs and initializers of one ONNX graph. Every `op` call returns fresh,
 * unique value names, so graph-building code reads like straight-line tensor code.
 */
export class GraphBuilder {
  private readonly nodes: NodeMessage[] = [];
  private readonly inputs: ValueInfoMessage[] = [];
  private readonly outputs: ValueInfoMessage[] = [];
  private readonly initializers: TensorMessage[] = [];
  private readonly constants = new Map<string, string>();
  private counter = 0;

  input(name: string, type: ElementType, shape: readonly Dimension[]): string {
    this.inputs.push(valueInfo(name, type, shape));
    return name;
  }

  output(name: string, type: ElementType, shape: readonly Dimension[]): void {
    this.outputs.push(valueInfo(name, type, shape));
  }

  initializer(tensor: TensorMessage): string {
    this.initializers.push(tensor);
    return tensor.name;
  }

  /** An int64 constant, shared between all uses of the same values. */
  ints(values: readonly number[], scalar = false): string {
    const key = `i${scalar ? 's' : ''}:${values.join(',')}`;
    let name = this.constants.get(key);
    if (name === undefined) {
      name = `const_${this.constants.size}`;
      this.initializer(int64TensorMessage(name, scalar ? [] : [values.length], values));
      this.constants.set(key, name);
    }
    return name;
  }

  /** A float32 constant, shared between all uses of the same values. */
  floats(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `f:${dims.join('x')}:${values.join(',')}`;
    let name = this.constants.get(key);
    if (name === undefined) {
      name = `const_${this.constants.size}`;
      this.initializer(float32TensorMessage(name, dims, Float32Array.from(values)));
      this.constants.set(key, name);
    }
    return name;
  }

  /** Adds one node; returns its output names (`outputs` of them, or the explicit names given). */
  node(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeValue>> = {},
    outputs: number | readonly string[] = 1,
  ): string[] {
    const id = this.counter++;
    const names =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, (_, index) => `${opType.toLowerCase()}_${id}_${index}`)
        : [...outputs];
    this.nodes.push({
      name: `${opType}_${id}`,
      opType,
      input: inputs,
      output: names,
      attribute: Object.entries(attributes).map(([name, value]) => attribute(name, value)),
    });
    return names;
  }

  /** Adds a one-output node and returns that output's name. */
  op(
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeValue>> = {},
  ): string {
    return this.node(opType, inputs, attributes)[0]!;
  }

  /** Adds a node whose single output gets an explicit name (for graph outputs). */
  named(
    name: string,
    opType: string,
    inputs: readonly string[],
    attributes: Readonly<Record<string, AttributeValue>> = {},
  ): string {
    return this.node(opType, inputs, attributes, [name])[0]!;
  }

  build(name: string, docString?: string): GraphMessage {
    return {
      name,
      ...(docString === undefined ? {} : { docString }),
      node: this.nodes,
      initializer: this.initializers,
      input: this.inputs,
      output: this.outputs,
    };
  }
}
