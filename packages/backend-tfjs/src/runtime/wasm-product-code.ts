import { byteAddress, forRange, op, type ValueType } from './wasm-binary.js';

/** Pieces of WebAssembly code the SIMD product kernels share; arguments name the locals they use. */

type Code = readonly number[];

/**
 * `b` laid out `[k, width]` at `packed` (width ≥ n, zeros past column n), from `b` `[k, n]`, or `[n, k]`
 * when local `transposed` is set; `t` and `j` are the loop counters.
 */
export function packColumns(l: {
  packed: number;
  b: number;
  t: number;
  j: number;
  k: number;
  n: number;
  width: number;
  transposed: number;
}): Code[] {
  const get = op.localGet;
  return forRange(
    l.t,
    [op.i32Const(0)],
    [get(l.k)],
    [op.i32Const(1)],
    [
      ...forRange(
        l.j,
        [op.i32Const(0)],
        [get(l.width)],
        [op.i32Const(1)],
        [
          ...byteAddress(l.packed, [get(l.t), get(l.width), op.i32Mul, get(l.j), op.i32Add]),
          ...[get(l.j), get(l.n), op.i32LtU, op.ifResult(0x7d as ValueType)],
          // transposed ? b[j][t] : b[t][j]
          ...byteAddress(l.b, [
            get(l.j),
            get(l.k),
            op.i32Mul,
            get(l.t),
            op.i32Add,
            get(l.t),
            get(l.n),
            op.i32Mul,
            get(l.j),
            op.i32Add,
            get(l.transposed),
            op.select,
          ]),
          op.f32Load,
          op.else,
          op.f32Const(0),
          op.end,
          op.f32Store,
        ],
      ),
    ],
  );
}

/**
 * Stores the lanes of local `value` at columns `column … column + 3` of row `row` (code leaving the row
 * index) of `out` `[·, n]`: one vector store when all four are inside the row, else lane by lane up to n.
 */
export function storeColumns(
  l: { out: number; n: number; column: number; value: number },
  row: Code[],
): Code[] {
  const get = op.localGet;
  const at = (lane: number) =>
    byteAddress(l.out, [...row, get(l.n), op.i32Mul, get(l.column), op.i32Add, op.i32Const(lane), op.i32Add]);
  return [
    ...[get(l.column), op.i32Const(4), op.i32Add, get(l.n), op.i32LeU, op.if],
    ...at(0),
    ...[get(l.value), op.v128Store, op.else],
    ...[0, 1, 2].flatMap((lane) => [
      ...[get(l.column), op.i32Const(lane), op.i32Add, get(l.n), op.i32LtU, op.if],
      ...at(lane),
      ...[get(l.value), op.f32x4ExtractLane(lane), op.f32Store, op.end],
    ]),
    op.end,
  ];
}

/** Byte address of element (row, t) of `a` at local `base`: `[m, k]`, or `[k, m]` when local `transposed` is set. */
export function elementAddress(l: {
  base: number;
  row: number;
  t: number;
  m: number;
  k: number;
  transposed: number;
}): Code[] {
  const get = op.localGet;
  return byteAddress(l.base, [
    ...[get(l.t), get(l.m), op.i32Mul, get(l.row), op.i32Add],
    ...[get(l.row), get(l.k), op.i32Mul, get(l.t), op.i32Add],
    ...[get(l.transposed), op.select],
  ]);
}

/** `min(start + step, end)` on the stack; `start`, `end` locals, `step` code leaving an i32. */
export function blockEnd(start: number, step: Code, end: number): Code[] {
  const get = op.localGet;
  return [get(start), step, op.i32Add, get(end), get(start), step, op.i32Add, get(end), op.i32LeU, op.select];
}
