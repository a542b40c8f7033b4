import { byteAddress, encodeModule, forRange, I32, op, V128, type ValueType } from './wasm-binary.js';
import { blockEnd, elementAddress, packColumns, storeColumns } from './wasm-product-code.js';

/**
 * A matrix product for operands anywhere in tfjs-backend-wasm's heap that adds each output's products in
 * float32 over k one at a time from zero: what XNNPACK's f32 GEMM (tfjs-wasm's `tf.matMul` without
 * flags) computes, so the bits are the same (tested), with no tensor, no operator and no weight packing
 * per call. Four rows by eight columns at a time, as XNNPACK's WebAssembly kernels do, so each load of
 * `b` serves four rows; k in blocks of 256, so that a block of `b` stays in cache while every row uses
 * it (a weight gradient sums over thousands of rows). Between blocks each output's running sum is kept
 * in float32 in `partials`, which leaves the order of the additions as it was.
 *
 * `product(a, b, out, packed, partials, m, n, k, transposeA, transposeB)` takes byte addresses in the
 * imported memory: `a` `[m, k]` (`[k, m]` transposed), `b` `[k, n]` (`[n, k]` transposed), `out`
 * `[m, n]`; `packed`, room for `k × n8` floats (n rounded up to 8), where `b` is laid out `[k, n8]`
 * with zero padding unless it is already so (not transposed, n a multiple of 8); `partials`, room for
 * `m × n8` floats when k is above 256 (unused otherwise). k is at least 1.
 */

type Code = readonly number[];
const ROWS = 4;
const VECTORS = 2;
/** k per block (see above). */
export const SEQUENTIAL_K_BLOCK = 256;

const P = { a: 0, b: 1, out: 2, packed: 3, partials: 4, m: 5, n: 6, k: 7, transposeA: 8, transposeB: 9 };
const LOCAL_TYPES: ValueType[] = [];
const local = (type: ValueType) => 10 + LOCAL_TYPES.push(type) - 1;
const L = {
  n8: local(I32),
  k0: local(I32),
  kEnd: local(I32),
  i: local(I32),
  j: local(I32),
  t: local(I32),
  bBase: local(I32),
  rowBytes: local(I32),
  aPointer: local(I32),
  bPointer: local(I32),
  /** Bytes from one k to the next in a row of `a`, and from one row to the next. */
  aStep: local(I32),
  rowStride: local(I32),
  column: local(I32),
  lanes: local(V128),
  columns: [local(V128), local(V128)],
  sums: [...Array(ROWS)].map(() => [local(V128), local(V128)]),
};

const get = (index: number): Code => op.localGet(index);
const i32 = (value: number): Code => op.i32Const(value);

/** `b` as `[k, n8]` in `packed`, zeros past column n. */
const packB: Code[] = packColumns({
  packed: P.packed,
  b: P.b,
  t: L.t,
  j: L.j,
  k: P.k,
  n: P.n,
  width: L.n8,
  transposed: P.transposeB,
});

/** Output columns j … j + 7 of `rows` rows from row i. */
function tile(rows: number): Code[] {
  const rowRange = [...Array(rows).keys()];
  const vectorRange = [...Array(VECTORS).keys()];
  const zero: Code[] = [op.f32Const(0), op.f32x4Splat];
  const accumulate = forRange(
    L.t,
    [get(L.k0)],
    [get(L.kEnd)],
    [i32(1)],
    [
      ...vectorRange.flatMap((v) => [get(L.bPointer), op.v128LoadAt(16 * v), op.localSet(L.columns[v]!)]),
      ...rowRange.flatMap((r) => [
        // a(i + r, t) · b(t, j …), added to the running sums
        ...[get(L.aPointer), ...(r === 0 ? [] : [get(L.rowStride), i32(r), op.i32Mul, op.i32Add])],
        ...[op.f32Load, op.f32x4Splat, op.localSet(L.lanes)],
        ...vectorRange.flatMap((v) => [
          get(L.sums[r]![v]!),
          get(L.lanes),
          get(L.columns[v]!),
          op.f32x4Mul,
          op.f32x4Add,
          op.localSet(L.sums[r]![v]!),
        ]),
      ]),
      ...[get(L.aPointer), get(L.aStep), op.i32Add, op.localSet(L.aPointer)],
      ...[get(L.bPointer), get(L.rowBytes), op.i32Add, op.localSet(L.bPointer)],
    ],
  );
  /** Float `column` of row i + r in `partials` (`[m, n8]`). */
  const partial = (r: number, v: number): Code[] =>
    byteAddress(P.partials, [
      get(L.i),
      i32(r),
      op.i32Add,
      get(L.n8),
      op.i32Mul,
      get(L.j),
      op.i32Add,
      i32(4 * v),
      op.i32Add,
    ]);
  const keep = rowRange.flatMap((r) =>
    vectorRange.flatMap((v) => [...partial(r, v), get(L.sums[r]![v]!), op.v128Store]),
  );
  const resume = rowRange.flatMap((r) =>
    vectorRange.flatMap((v) => [
      ...[get(L.k0), op.if, ...partial(r, v), op.v128Load, op.localSet(L.sums[r]![v]!), op.else],
      ...[...zero, op.localSet(L.sums[r]![v]!), op.end],
    ]),
  );
  const store = rowRange.flatMap((r) =>
    vectorRange.flatMap((v) => [
      ...[get(L.j), i32(4 * v), op.i32Add, op.localSet(L.column)],
      ...storeColumns({ out: P.out, n: P.n, column: L.column, value: L.sums[r]![v]! }, [
        get(L.i),
        i32(r),
        op.i32Add,
      ]),
    ]),
  );
  return forRange(
    L.j,
    [i32(0)],
    [get(L.n8)],
    [i32(4 * VECTORS)],
    [
      // The running sums: from zero in the first block of k, else as the last block left them.
      ...resume,
      // aPointer = a + (transposeA ? k0·m + i : i·k + k0)·4; bPointer = bBase + (k0·n8 + j)·4
      ...elementAddress({ base: P.a, row: L.i, t: L.k0, m: P.m, k: P.k, transposed: P.transposeA }),
      op.localSet(L.aPointer),
      ...byteAddress(L.bBase, [get(L.k0), get(L.n8), op.i32Mul, get(L.j), op.i32Add]),
      op.localSet(L.bPointer),
      ...accumulate,
      ...[get(L.kEnd), get(P.k), op.i32LtU, op.if, ...keep, op.else, ...store, op.end],
    ],
  );
}

/** The row count that full tiles cover: m rounded down to a multiple of 4. */
const tiledRows: Code[] = [get(P.m), i32(-ROWS), op.i32And];

const productFunction = {
  name: 'product',
  params: Array(10).fill(I32),
  results: [],
  locals: LOCAL_TYPES,
  body: [
    ...[get(P.n), i32(7), op.i32Add, i32(-8), op.i32And, op.localSet(L.n8)],
    ...[get(P.m), i32(4), op.i32Mul, i32(4), get(P.transposeA), op.select, op.localSet(L.aStep)],
    ...[i32(4), get(P.k), i32(4), op.i32Mul, get(P.transposeA), op.select, op.localSet(L.rowStride)],
    // b as it lies when it is already [k, n8], else its packed copy.
    ...[get(P.transposeB), get(P.n), get(L.n8), op.i32Sub, op.i32Or, op.if],
    ...packB,
    ...[get(P.packed), op.localSet(L.bBase), op.else, get(P.b), op.localSet(L.bBase), op.end],
    ...[get(L.n8), i32(4), op.i32Mul, op.localSet(L.rowBytes)],
    ...forRange(
      L.k0,
      [i32(0)],
      [get(P.k)],
      [i32(SEQUENTIAL_K_BLOCK)],
      [
        ...blockEnd(L.k0, i32(SEQUENTIAL_K_BLOCK), P.k),
        op.localSet(L.kEnd),
        ...forRange(L.i, [i32(0)], tiledRows, [i32(ROWS)], tile(ROWS)),
        ...forRange(L.i, tiledRows, [get(P.m)], [i32(1)], tile(1)),
      ],
    ),
  ],
};

/** The module's bytes; it imports the memory it works in as `env.memory`. */
export const sequentialProductModule = (): Uint8Array => encodeModule([productFunction], 'imported');
