import { GraphBuilder } from '../src/onnx/graph-builder.js';
import { encodeModel } from '../src/onnx/onnx-proto.js';

/** A one-node model `y = a · bᵀ` (Gemm, transB), the kernel the engine's projections run on. */
export function encodeModelForGemm(): Uint8Array {
  const graph = new GraphBuilder();
  const a = graph.input('a', 'float32', ['rows', 'inner']);
  const b = graph.input('b', 'float32', ['cols', 'inner']);
  graph.named('y', 'Gemm', [a, b], { transB: 1 });
  graph.output('y', 'float32', ['rows', 'cols']);
  return encodeModel({
    irVersion: 8,
    producerName: 'moerl-bench',
    producerVersion: '0',
    opsetImport: [{ domain: '', version: 17 }],
    graph: graph.build('gemm'),
  });
}
