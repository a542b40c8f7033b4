import { GraphBuilder } from '../src/onnx/graph-builder.js';
import { encodeModel } from '../src/onnx/onnx-proto.js';

/** Small one-purpose models the bench times to set the engine's figures against. */

function encodeBenchModel(graph: GraphBuilder, name: string): Uint8Array {
  return encodeModel({
    irVersion: 8,
    producerName: 'moerl-bench',
    producerVersion: '0',
    opsetImport: [{ domain: '', version: 17 }],
    graph: graph.build(name),
  });
}

/** A one-node model `y = a · bᵀ` (Gemm, transB), the kernel the engine's projections run on. */
export function encodeModelForGemm(): Uint8Array {
  const graph = new GraphBuilder();
  const a = graph.input('a', 'float32', ['rows', 'inner']);
  const b = graph.input('b', 'float32', ['cols', 'inner']);
  graph.named('y', 'Gemm', [a, b], { transB: 1 });
  graph.output('y', 'float32', ['rows', 'cols']);
  return encodeBenchModel(graph, 'gemm');
}

/**
 * Only the expert products of a decode step, in the fewest nodes: for each of `layers` layers, one batched
 * MatMul of the touched experts' rows `x.l` `[experts, rows, hidden]` by their gate ‖ up `gu.l` `[experts,
 * hidden, 2 × width]`, and of the first half of that by their down `d.l` `[experts, width, hidden]`.
 * Weights are graph inputs, as in the engine; the layers' outputs are concatenated.
 */
export function encodeModelForExpertProducts(layers: number, hidden: number, width: number): Uint8Array {
  const graph = new GraphBuilder();
  const outputs: string[] = [];
  for (let layer = 0; layer < layers; layer++) {
    const x = graph.input(`x.${layer}`, 'float32', ['experts', 'rows', hidden]);
    const gateUp = graph.input(`gu.${layer}`, 'float32', ['experts', hidden, 2 * width]);
    const down = graph.input(`d.${layer}`, 'float32', ['experts', width, hidden]);
    const lifted = graph.op('MatMul', [x, gateUp]);
    const half = graph.op('Slice', [lifted, graph.ints([0]), graph.ints([width]), graph.ints([2])]);
    outputs.push(graph.op('MatMul', [half, down]));
  }
  graph.named('y', 'Concat', outputs, { axis: 0 });
  graph.output('y', 'float32', ['all_experts', 'rows', hidden]);
  return encodeBenchModel(graph, 'expert_products');
}
