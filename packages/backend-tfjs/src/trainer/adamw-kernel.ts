import {
  encodeModule,
  F32,
  I32,
  instantiate,
  op,
  V128,
  type ValueType,
  type WasmFunction,
} from '../runtime/wasm-binary.js';

/**
 * The host AdamW update and the gradient's sum of squares as WebAssembly kernels. Every step is one
 * IEEE float32 operation (four lanes at a time for AdamW), in the order the tensor path runs its ops, so
 * the results are the tensor path's bits; the same loop in JavaScript, rounding each step with
 * `Math.fround`, took ~20 ns per parameter, and with 64 experts the update was a fifth of a step.
 *
 * Arrays pass through the kernel's own memory in chunks small enough to stay in cache, so it needs no
 * memory of the model's size and the caller's arrays can live anywhere (JS arrays, tfjs-wasm's heap).
 */

/** Float32 elements per chunk: four chunk buffers (m, v, gradient, weights) make 256 KiB. */
const CHUNK = 16_384;
const CHUNK_BYTES = CHUNK * 4;
const PAGE_BYTES = 65_536;

// Parameters of `adamw`/`adamwDecay`: byte offsets of m, v, gradient and weights, the byte count, then
// the f32 coefficients in this order.
const COEFFICIENTS = ['b1', 'b2', 'ob1', 'ob2', 'c1', 'c2', 'eps', 'lr', 'scale', 'decay'] as const;
const [M, V, G, P, BYTES] = [0, 1, 2, 3, 4];
const coefficient = (key: (typeof COEFFICIENTS)[number]) => 5 + COEFFICIENTS.indexOf(key);

function adamwFunction(name: string, withDecay: boolean): WasmFunction {
  // Locals: the byte index into the chunks, the coefficients splat to 4 lanes, then five vectors.
  const index = 5 + COEFFICIENTS.length;
  const splat = (key: (typeof COEFFICIENTS)[number]) => index + 1 + COEFFICIENTS.indexOf(key);
  const [g, m, v, update, weights] = [0, 1, 2, 3, 4].map((k) => index + 1 + COEFFICIENTS.length + k) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const at = (base: number) => [op.localGet(base), op.localGet(index), op.i32Add];
  const lanes = (key: (typeof COEFFICIENTS)[number]) => op.localGet(splat(key));
  return {
    name,
    params: [I32, I32, I32, I32, I32, ...COEFFICIENTS.map((): ValueType => F32)],
    results: [],
    locals: [I32, ...COEFFICIENTS.map((): ValueType => V128), V128, V128, V128, V128, V128],
    body: [
      ...COEFFICIENTS.flatMap((key) => [
        op.localGet(coefficient(key)),
        op.f32x4Splat,
        op.localSet(splat(key)),
      ]),
      op.block,
      op.loop,
      ...[op.localGet(index), op.localGet(BYTES), op.i32GeU, op.brIf(1)],
      // g = gradient · scale
      ...[...at(G), op.v128Load, lanes('scale'), op.f32x4Mul, op.localSet(g)],
      // m = m·β₁ + g·(1−β₁)
      ...[...at(M), ...at(M), op.v128Load, lanes('b1'), op.f32x4Mul],
      ...[op.localGet(g), lanes('ob1'), op.f32x4Mul, op.f32x4Add, op.localTee(m), op.v128Store],
      // v = v·β₂ + (g·g)·(1−β₂)
      ...[...at(V), ...at(V), op.v128Load, lanes('b2'), op.f32x4Mul],
      ...[
        op.localGet(g),
        op.localGet(g),
        op.f32x4Mul,
        lanes('ob2'),
        op.f32x4Mul,
        op.f32x4Add,
        op.localTee(v),
      ],
      op.v128Store,
      // update = (m / c₁) / (√(v / c₂) + ε) [+ weights·λ]
      ...[op.localGet(m), lanes('c1'), op.f32x4Div, op.localGet(v), lanes('c2'), op.f32x4Div, op.f32x4Sqrt],
      ...[lanes('eps'), op.f32x4Add, op.f32x4Div, op.localSet(update)],
      ...[...at(P), op.v128Load, op.localSet(weights)],
      ...(withDecay
        ? [
            op.localGet(update),
            op.localGet(weights),
            lanes('decay'),
            op.f32x4Mul,
            op.f32x4Add,
            op.localSet(update),
          ]
        : []),
      // weights = weights − update·lr
      ...[
        ...at(P),
        op.localGet(weights),
        op.localGet(update),
        lanes('lr'),
        op.f32x4Mul,
        op.f32x4Sub,
        op.v128Store,
      ],
      ...[op.localGet(index), op.i32Const(16), op.i32Add, op.localSet(index), op.br(0)],
      op.end,
      op.end,
    ],
  };
}

// sumSquares(offset, bytes, start) → start + x₀² + x₁² + …, added one at a time (the order fixes the bits).
const sumSquaresFunction: WasmFunction = {
  name: 'sumSquares',
  params: [I32, I32, F32],
  results: [F32],
  locals: [I32],
  body: [
    op.block,
    op.loop,
    ...[op.localGet(3), op.localGet(1), op.i32GeU, op.brIf(1)],
    ...[op.localGet(2), op.localGet(0), op.localGet(3), op.i32Add, op.f32Load],
    ...[op.localGet(0), op.localGet(3), op.i32Add, op.f32Load, op.f32Mul, op.f32Add, op.localSet(2)],
    ...[op.localGet(3), op.i32Const(4), op.i32Add, op.localSet(3), op.br(0)],
    op.end,
    op.end,
    op.localGet(2),
  ],
};

interface KernelExports {
  readonly memory: { readonly buffer: ArrayBuffer };
  readonly adamw: (...args: number[]) => void;
  readonly adamwDecay: (...args: number[]) => void;
  readonly sumSquares: (offset: number, bytes: number, start: number) => number;
}

let kernel: { exports: KernelExports; chunks: Float32Array } | undefined;

function loadKernel(): { exports: KernelExports; chunks: Float32Array } {
  if (kernel === undefined) {
    const bytes = encodeModule(
      [adamwFunction('adamw', false), adamwFunction('adamwDecay', true), sumSquaresFunction],
      { pages: (4 * CHUNK_BYTES) / PAGE_BYTES },
    );
    const exports = instantiate(bytes) as unknown as KernelExports;
    kernel = { exports, chunks: new Float32Array(exports.memory.buffer) };
  }
  return kernel;
}

/** AdamW's coefficients for one update; each is used as float32, as the tensor path's scalars are. */
export interface AdamWStepCoefficients {
  readonly beta1: number;
  readonly beta2: number;
  /** 1 − β₁ and 1 − β₂, computed in float64 before rounding, as the tensor path's scalars are. */
  readonly oneMinusBeta1: number;
  readonly oneMinusBeta2: number;
  /** Bias corrections 1 − β₁ᵗ and 1 − β₂ᵗ. */
  readonly correction1: number;
  readonly correction2: number;
  readonly epsilon: number;
  readonly learningRate: number;
  /** Multiplies every gradient first (the clip factor). */
  readonly gradientScale: number;
  /** Decoupled weight decay λ; 0 skips the term (not the same bits as adding `weights · 0`). */
  readonly weightDecay: number;
}

/**
 * One AdamW update of one parameter: `m` and `v` in place, the new weights into `next` (which may be
 * `weights` itself). A missing gradient counts as zeros. All arrays have the same length.
 */
export function adamwUpdate(
  weights: Float32Array,
  gradient: Float32Array | undefined,
  m: Float32Array,
  v: Float32Array,
  next: Float32Array,
  coefficients: AdamWStepCoefficients,
): void {
  const length = weights.length;
  if ([gradient?.length ?? length, m.length, v.length, next.length].some((other) => other !== length)) {
    throw new Error(`adamwUpdate: arrays of different lengths (weights ${length})`);
  }
  const { exports, chunks } = loadKernel();
  const c = coefficients;
  const update = c.weightDecay > 0 ? exports.adamwDecay : exports.adamw;
  const [mAt, vAt, gAt, pAt] = [0, 1, 2, 3].map((k) => k * CHUNK) as [number, number, number, number];
  for (let start = 0; start < weights.length; start += CHUNK) {
    const end = Math.min(weights.length, start + CHUNK);
    const count = end - start;
    chunks.set(m.subarray(start, end), mAt);
    chunks.set(v.subarray(start, end), vAt);
    if (gradient === undefined) chunks.fill(0, gAt, gAt + count);
    else chunks.set(gradient.subarray(start, end), gAt);
    chunks.set(weights.subarray(start, end), pAt);
    // Whole 4-lane vectors: up to 3 lanes past `count` compute on stale values that are never read back.
    const bytes = Math.ceil(count / 4) * 16;
    update(
      mAt * 4,
      vAt * 4,
      gAt * 4,
      pAt * 4,
      bytes,
      c.beta1,
      c.beta2,
      c.oneMinusBeta1,
      c.oneMinusBeta2,
      c.correction1,
      c.correction2,
      c.epsilon,
      c.learningRate,
      c.gradientScale,
      c.weightDecay,
    );
    m.set(chunks.subarray(mAt, mAt + count), start);
    v.set(chunks.subarray(vAt, vAt + count), start);
    next.set(chunks.subarray(pAt, pAt + count), start);
  }
}

/** Σ x², added in float32 one element at a time from the first (the order the tensor path's `sum` adds in). */
export function sumOfSquares(values: Float32Array): number {
  const { exports, chunks } = loadKernel();
  let sum = 0;
  for (let start = 0; start < values.length; start += CHUNK) {
    const end = Math.min(values.length, start + CHUNK);
    chunks.set(values.subarray(start, end), 0);
    sum = exports.sumSquares(0, (end - start) * 4, sum);
  }
  return sum;
}
