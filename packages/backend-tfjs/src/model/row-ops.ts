import * as tf from '@tensorflow/tfjs-core';

/*
 * Row selection with a gradient that every backend can run. `tf.gather`'s gradient needs the
 * UnsortedSegmentSum kernel, which tfjs-backend-wasm lacks, and `gatherND` / `scatterND` have no gradient
 * at all. Both directions are expressed with GatherNd / ScatterNd, which cpu and wasm implement, and
 * ScatterNd sums duplicate indices, which is exactly the gradient of a gather that picks a row twice.
 * The index tensor is handed to `save` so the tape keeps it alive until the backward pass.
 */

type Save = (tensors: tf.Tensor[]) => void;

/** `x[rows]` for a 2-D `x`: `[rows.length, columns]`. Gradient: scatter-add back into x's rows. */
export function gatherRows(x: tf.Tensor2D, rows: Int32Array): tf.Tensor2D {
  const indices = tf.tensor2d(rows, [rows.length, 1], 'int32');
  const shape = x.shape;
  const gather = tf.customGrad(((input: tf.Tensor, save: Save) => {
    save([indices]);
    return {
      value: tf.gatherND(input, indices),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.scatterND(saved[0]!, dy, shape),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return gather(x) as tf.Tensor2D;
}
