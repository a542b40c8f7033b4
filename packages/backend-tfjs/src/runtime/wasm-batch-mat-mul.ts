import {
  byteAddress,
  encodeModule,
  forRange,
  I32,
  op,
  V128,
  type ValueType,
  type WasmFunction,
} from './wasm-binary.js';
import { blockEnd, elementAddress, packColumns, storeColumns } from './wasm-product-code.js';

/**
 * A batched matrix product for tfjs-backend-wasm's heap, computing exactly what its own batched kernel
 * computes, four output columns at a time. tfjs-wasm sends every product with a batch above 1 or a
 * transpose flag (attention's QKᵀ and PV, and their gradients) to a scalar loop; XNNPACK only takes
 * flag-free single products. For each output element that loop adds the products in float32 over k in
 * blocks of 48, one at a time from zero, and adds each block's sum to the running total; here each of
 * four lanes does the same, so the bits are the same (tested against tfjs's kernel).
 *
 * `batchMatMul(a, b, out, packed, batch, m, n, k, transposeA, transposeB)` takes byte addresses in the
 * imported memory: `a` `[batch, m, k]` (`[batch, k, m]` transposed), `b` `[batch, k, n]` (`[batch, n,
 * k]` transposed), `out` `[batch, m, n]`, and `packed`, room for `k × n` rounded up to 4 floats, where
 * each batch's `b` is laid out `[k, n]` with zero padding.
 */

type Code = readonly number[];
const K_BLOCK = 48;
/** Output columns a step computes: 16 (four vectors) while that many remain, then 4. */
const WIDE = 4;

const P = { a: 0, b: 1, out: 2, packed: 3, batch: 4, m: 5, n: 6, k: 7, transposeA: 8, transposeB: 9 };
const LOCAL_TYPES: ValueType[] = [];
const local = (type: ValueType) => 10 + LOCAL_TYPES.push(type) - 1;
const L = {
  n4: local(I32),
  batchIndex: local(I32),
  i: local(I32),
  j: local(I32),
  kk: local(I32),
  k0: local(I32),
  kEnd: local(I32),
  aBase: local(I32),
  bBase: local(I32),
  outBase: local(I32),
  aPointer: local(I32),
  bPointer: local(I32),
  aStep: local(I32),
  rowBytes: local(I32),
  column: local(I32),
  lanes: local(V128),
  sums: [local(V128), local(V128), local(V128), local(V128)],
  totals: [local(V128), local(V128), local(V128), local(V128)],
};

const get = (index: number): Code => op.localGet(index);
const i32 = (value: number): Code => op.i32Const(value);
const zeros: Code[] = [op.f32Const(0), op.f32x4Splat];

/** Lays out this batch's `b` as `[k, n4]` in `packed`, zeros past column n. */
const packB: Code[] = packColumns({
  packed: P.packed,
  b: L.bBase,
  t: L.kk,
  j: L.j,
  k: P.k,
  n: P.n,
  width: L.n4,
  transposed: P.transposeB,
});

/** Output columns j … j + 4·vectors − 1 of row i. */
function columnsOf(vectors: number): Code[] {
  const range = [...Array(vectors).keys()];
  const accumulate = forRange(
    L.kk,
    [get(L.k0)],
    [get(L.kEnd)],
    [i32(1)],
    [
      ...[get(L.aPointer), op.f32Load, op.f32x4Splat, op.localSet(L.lanes)],
      ...range.flatMap((v) => [
        get(L.sums[v]!),
        get(L.lanes),
        get(L.bPointer),
        op.v128LoadAt(16 * v),
        op.f32x4Mul,
        op.f32x4Add,
        op.localSet(L.sums[v]!),
      ]),
      ...[get(L.aPointer), get(L.aStep), op.i32Add, op.localSet(L.aPointer)],
      ...[get(L.bPointer), get(L.rowBytes), op.i32Add, op.localSet(L.bPointer)],
    ],
  );
  const blocks = forRange(
    L.k0,
    [i32(0)],
    [get(P.k)],
    [i32(K_BLOCK)],
    [
      ...blockEnd(L.k0, i32(K_BLOCK), P.k),
      op.localSet(L.kEnd),
      ...range.flatMap((v) => [...zeros, op.localSet(L.sums[v]!)]),
      // aPointer = a + (transposeA ? k0·m + i : i·k + k0)·4; bPointer = packed + (k0·n4 + j)·4
      ...elementAddress({ base: L.aBase, row: L.i, t: L.k0, m: P.m, k: P.k, transposed: P.transposeA }),
      op.localSet(L.aPointer),
      ...byteAddress(P.packed, [get(L.k0), get(L.n4), op.i32Mul, get(L.j), op.i32Add]),
      op.localSet(L.bPointer),
      ...accumulate,
      ...range.flatMap((v) => [get(L.totals[v]!), get(L.sums[v]!), op.f32x4Add, op.localSet(L.totals[v]!)]),
    ],
  );
  const store = range.flatMap((v) => [
    ...[get(L.j), i32(4 * v), op.i32Add, op.localSet(L.column)],
    ...storeColumns({ out: L.outBase, n: P.n, column: L.column, value: L.totals[v]! }, [get(L.i)]),
  ]);
  return [...range.flatMap((v) => [...zeros, op.localSet(L.totals[v]!)]), ...blocks, ...store];
}

const wideEnd: Code[] = [get(L.n4), i32(-4 * WIDE), op.i32And];

const batchMatMulFunction: WasmFunction = {
  name: 'batchMatMul',
  params: Array(10).fill(I32),
  results: [],
  locals: LOCAL_TYPES,
  body: [
    ...[get(P.n), i32(3), op.i32Add, i32(-4), op.i32And, op.localSet(L.n4)],
    ...[get(L.n4), i32(4), op.i32Mul, op.localSet(L.rowBytes)],
    ...[get(P.m), i32(4), op.i32Mul, i32(4), get(P.transposeA), op.select, op.localSet(L.aStep)],
    ...forRange(
      L.batchIndex,
      [i32(0)],
      [get(P.batch)],
      [i32(1)],
      [
        ...byteAddress(P.a, [get(L.batchIndex), get(P.m), op.i32Mul, get(P.k), op.i32Mul]),
        op.localSet(L.aBase),
        ...byteAddress(P.b, [get(L.batchIndex), get(P.k), op.i32Mul, get(P.n), op.i32Mul]),
        op.localSet(L.bBase),
        ...byteAddress(P.out, [get(L.batchIndex), get(P.m), op.i32Mul, get(P.n), op.i32Mul]),
        op.localSet(L.outBase),
        ...packB,
        ...forRange(
          L.i,
          [i32(0)],
          [get(P.m)],
          [i32(1)],
          [
            ...forRange(L.j, [i32(0)], wideEnd, [i32(4 * WIDE)], columnsOf(WIDE)),
            ...forRange(L.j, wideEnd, [get(L.n4)], [i32(4)], columnsOf(1)),
          ],
        ),
      ],
    ),
  ],
};

/** The module's bytes; it imports the memory it works in as `env.memory`. */
export const batchMatMulModule = (): Uint8Array => encodeModule([batchMatMulFunction], 'imported');
