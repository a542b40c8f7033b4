import * as tf from '@tensorflow/tfjs-core';
import { matMul } from './mat-mul.js';

/*
 * The Node build of @tensorflow/tfjs-core registers no gradient functions (the full @tensorflow/tfjs
 * package does, and it is not a dependency here). These are the gradients of the kernels the forward pass
 * differentiates through, written after tfjs-core's own. They are registered only where none exists, so a
 * process that also loaded @tensorflow/tfjs keeps the originals.
 */

/** Input name (or position) → its gradient, computed lazily. */
type GradientMap = Record<string, () => tf.Tensor>;

type GradFunc = (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => GradientMap;

interface Gradient {
  readonly kernelName: string;
  readonly inputsToSave?: string[];
  readonly outputsToSave?: boolean[];
  readonly saveAllInputs?: boolean;
  readonly gradFunc: GradFunc;
}

const single = (dy: tf.Tensor | tf.Tensor[]) => dy as tf.Tensor;

/** Sums a broadcast gradient back to `shape`. */
function reduceTo(gradient: tf.Tensor, shape: number[]): tf.Tensor {
  const axes = tf.broadcast_util.getReductionAxes(shape, gradient.shape);
  return tf.reshape(axes.length > 0 ? tf.sum(gradient, axes) : gradient, shape);
}

function axesOf(axis: unknown, rank: number): number[] {
  const list =
    axis === null || axis === undefined ? [...Array(rank).keys()] : Array.isArray(axis) ? axis : [axis];
  return (list as number[]).map((value) => (value < 0 ? value + rank : value));
}

/** dy of a reduction, broadcast back over the reduced axes of `shape`. */
function expandReduced(dy: tf.Tensor, shape: number[], axis: unknown): tf.Tensor {
  const expanded = shape.slice();
  for (const index of axesOf(axis, shape.length)) expanded[index] = 1;
  return tf.mul(tf.reshape(dy, expanded), tf.ones(shape, 'float32'));
}

const GRADIENTS: readonly Gradient[] = [
  {
    kernelName: 'Add',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b]) => ({
      a: () => reduceTo(single(dy), a!.shape),
      b: () => reduceTo(single(dy), b!.shape),
    }),
  },
  {
    kernelName: 'Sub',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b]) => ({
      a: () => reduceTo(single(dy), a!.shape),
      b: () => tf.neg(reduceTo(single(dy), b!.shape)),
    }),
  },
  {
    kernelName: 'Multiply',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b]) => ({
      a: () => reduceTo(tf.mul(single(dy), tf.cast(b!, 'float32')), a!.shape),
      b: () => reduceTo(tf.mul(single(dy), tf.cast(a!, 'float32')), b!.shape),
    }),
  },
  {
    kernelName: 'RealDiv',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b]) => ({
      a: () => reduceTo(tf.div(single(dy), b!), a!.shape),
      b: () => reduceTo(tf.neg(tf.div(tf.mul(single(dy), a!), tf.square(b!))), b!.shape),
    }),
  },
  {
    kernelName: 'BatchMatMul',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b], attrs) => {
      const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
      const g = single(dy);
      let da: () => tf.Tensor;
      let db: () => tf.Tensor;
      if (!transposeA && !transposeB) {
        da = () => matMul(g, b!, false, true);
        db = () => matMul(a!, g, true, false);
      } else if (!transposeA && transposeB) {
        da = () => matMul(g, b!, false, false);
        db = () => matMul(g, a!, true, false);
      } else if (transposeA && !transposeB) {
        da = () => matMul(b!, g, false, true);
        db = () => matMul(a!, g, false, false);
      } else {
        da = () => matMul(b!, g, true, true);
        db = () => matMul(g, a!, true, true);
      }
      return { a: () => reduceTo(da(), a!.shape), b: () => reduceTo(db(), b!.shape) };
    },
  },
  { kernelName: 'Identity', gradFunc: (dy) => ({ x: () => single(dy) }) },
  { kernelName: 'Cast', gradFunc: (dy) => ({ x: () => tf.clone(single(dy)) }) },
  {
    kernelName: 'Reshape',
    inputsToSave: ['x'],
    gradFunc: (dy, [x]) => ({ x: () => tf.reshape(single(dy), x!.shape) }),
  },
  {
    kernelName: 'Transpose',
    gradFunc: (dy, _saved, attrs) => {
      const perm = (attrs as unknown as { perm: number[] }).perm;
      const inverse = new Array<number>(perm.length);
      perm.forEach((axis, index) => {
        inverse[axis] = index;
      });
      return { x: () => tf.transpose(single(dy), inverse) };
    },
  },
  {
    kernelName: 'Tile',
    inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => {
      const reps = (attrs as unknown as { reps: number[] }).reps;
      // Output axis i is reps[i] copies of x's axis i: split it in two and sum over the copies.
      const split = x!.shape.flatMap((size, axis) => [reps[axis]!, size]);
      const copyAxes = x!.shape.map((_, axis) => 2 * axis);
      return { x: () => tf.reshape(tf.sum(tf.reshape(single(dy), split), copyAxes), x!.shape) };
    },
  },
  {
    kernelName: 'SplitV',
    inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => {
      const axis = axesOf((attrs as unknown as { axis: number }).axis, x!.shape.length)[0]!;
      return { x: () => tf.concat(dy as tf.Tensor[], axis) };
    },
  },
  {
    kernelName: 'Concat',
    saveAllInputs: true,
    gradFunc: (dy, saved, attrs) => {
      const axis = axesOf((attrs as unknown as { axis: number }).axis, saved[0]!.shape.length)[0]!;
      const pieces = tf.split(
        single(dy),
        saved.map((input) => input.shape[axis]!),
        axis,
      );
      return pieces.map((piece) => () => piece) as unknown as GradientMap;
    },
  },
  {
    kernelName: 'Softmax',
    outputsToSave: [true],
    gradFunc: (dy, [y], attrs) => {
      const dim = (attrs as unknown as { dim: number }).dim;
      const product = tf.mul(single(dy), y!);
      return { logits: () => tf.sub(product, tf.mul(tf.sum(product, [dim], true), y!)) };
    },
  },
  {
    kernelName: 'Sigmoid',
    inputsToSave: ['x'],
    gradFunc: (dy, [x]) => ({
      x: () => {
        const s = tf.sigmoid(x!);
        return tf.mul(single(dy), tf.mul(s, tf.sub(1, s)));
      },
    }),
  },
  {
    kernelName: 'Square',
    inputsToSave: ['x'],
    gradFunc: (dy, [x]) => ({ x: () => tf.mul(single(dy), tf.mul(tf.cast(x!, 'float32'), 2)) }),
  },
  {
    kernelName: 'Rsqrt',
    inputsToSave: ['x'],
    gradFunc: (dy, [x]) => ({ x: () => tf.div(single(dy), tf.mul(tf.pow(x!, 1.5), -2)) }),
  },
  { kernelName: 'Exp', outputsToSave: [true], gradFunc: (dy, [y]) => ({ x: () => tf.mul(single(dy), y!) }) },
  { kernelName: 'Neg', gradFunc: (dy) => ({ x: () => tf.neg(single(dy)) }) },
  {
    kernelName: 'Sum',
    inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => ({
      x: () => expandReduced(single(dy), x!.shape, (attrs as { axis?: unknown }).axis),
    }),
  },
  {
    kernelName: 'Mean',
    inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => {
      const axis = (attrs as { axis?: unknown }).axis;
      const count = axesOf(axis, x!.shape.length).reduce((product, index) => product * x!.shape[index]!, 1);
      return { x: () => tf.div(expandReduced(single(dy), x!.shape, axis), count) };
    },
  },
];

let registered = false;

/** Registers every missing gradient above, once per process. */
export function registerGradients(): void {
  if (registered) return;
  registered = true;
  for (const gradient of GRADIENTS) {
    if (tf.getGradient(gradient.kernelName) !== undefined) continue;
    tf.registerGradient(gradient as unknown as tf.GradConfig);
  }
}
