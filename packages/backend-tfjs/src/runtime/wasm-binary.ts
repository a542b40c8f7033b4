/**
 * Just enough of the WebAssembly binary format to write small numeric kernels in TypeScript: functions
 * over one exported memory, with i32, f32 and 128-bit SIMD values. Writing the bytes here (instead of
 * shipping a compiled .wasm) keeps the kernels readable and needs no toolchain at build time.
 */

export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;
export type ValueType = typeof I32 | typeof F32 | typeof V128;

function unsignedLeb(value: number): number[] {
  const out: number[] = [];
  let rest = value >>> 0;
  do {
    const low = rest & 0x7f;
    rest >>>= 7;
    out.push(rest === 0 ? low : low | 0x80);
  } while (rest !== 0);
  return out;
}

function signedLeb(value: number): number[] {
  const out: number[] = [];
  let rest = value | 0;
  for (;;) {
    const low = rest & 0x7f;
    rest >>= 7;
    if ((rest === 0 && (low & 0x40) === 0) || (rest === -1 && (low & 0x40) !== 0)) {
      out.push(low);
      return out;
    }
    out.push(low | 0x80);
  }
}

const vector = (items: readonly (readonly number[])[]): number[] => [
  ...unsignedLeb(items.length),
  ...items.flat(),
];
const section = (id: number, bytes: readonly number[]): number[] => [
  id,
  ...unsignedLeb(bytes.length),
  ...bytes,
];
const name = (text: string): number[] => vector([...new TextEncoder().encode(text)].map((byte) => [byte]));
const simd = (code: number): number[] => [0xfd, ...unsignedLeb(code)];

/** Instructions, as byte sequences to concatenate. Memory accesses take their address from the stack. */
export const op = {
  localGet: (index: number) => [0x20, ...unsignedLeb(index)],
  localSet: (index: number) => [0x21, ...unsignedLeb(index)],
  localTee: (index: number) => [0x22, ...unsignedLeb(index)],
  i32Const: (value: number) => [0x41, ...signedLeb(value)],
  f32Const: (value: number) => [0x43, ...new Uint8Array(Float32Array.of(value).buffer)],
  i32Add: [0x6a],
  i32Sub: [0x6b],
  i32Mul: [0x6c],
  i32And: [0x71],
  i32Or: [0x72],
  i32LtU: [0x49],
  i32GeU: [0x4f],
  i32LeU: [0x4d],
  /** Picks the first of two values when the condition (on top) is non-zero. */
  select: [0x1b],
  /** `if` with no result (`ifResult` yields a value of `type`); close with `end`, optionally after `else`. */
  if: [0x04, 0x40],
  ifResult: (type: ValueType) => [0x04, type],
  else: [0x05],
  /** `block` and `loop` without results; `br`/`brIf` count enclosing blocks outwards from 0. */
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  br: (depth: number) => [0x0c, ...unsignedLeb(depth)],
  brIf: (depth: number) => [0x0d, ...unsignedLeb(depth)],
  end: [0x0b],
  f32Load: [0x2a, 2, 0],
  f32Store: [0x38, 2, 0],
  f32Add: [0x92],
  f32Mul: [0x94],
  v128Load: [...simd(0x00), 4, 0],
  v128Store: [...simd(0x0b), 4, 0],
  /** `v128.load` at the address on the stack plus `offset` bytes. */
  v128LoadAt: (offset: number) => [...simd(0x00), 4, ...unsignedLeb(offset)],
  f32x4Splat: simd(0x13),
  f32x4ExtractLane: (lane: number) => [...simd(0x1f), lane],
  f32x4Sqrt: simd(0xe3),
  f32x4Add: simd(0xe4),
  f32x4Sub: simd(0xe5),
  f32x4Mul: simd(0xe6),
  f32x4Div: simd(0xe7),
} as const;

/** The byte address of float `index` from the address in local `base`: `base + index × 4`. */
export function byteAddress(base: number, index: readonly (readonly number[])[]): (readonly number[])[] {
  return [op.localGet(base), ...index, op.i32Const(4), op.i32Mul, op.i32Add];
}

/** `for (counter = start; counter < end; counter += step) body` (`end` is evaluated every round). */
export function forRange(
  counter: number,
  start: readonly (readonly number[])[],
  end: readonly (readonly number[])[],
  step: readonly (readonly number[])[],
  body: readonly (readonly number[])[],
): (readonly number[])[] {
  return [
    ...start,
    op.localSet(counter),
    op.block,
    op.loop,
    ...[op.localGet(counter), ...end, op.i32GeU, op.brIf(1)],
    ...body,
    ...[op.localGet(counter), ...step, op.i32Add, op.localSet(counter), op.br(0)],
    op.end,
    op.end,
  ];
}

export interface WasmFunction {
  readonly name: string;
  readonly params: readonly ValueType[];
  readonly results: readonly ValueType[];
  /** Locals after the parameters (numbered from `params.length` on). */
  readonly locals: readonly ValueType[];
  /** The body's instructions, without the final `end`. */
  readonly body: readonly (readonly number[])[];
}

/**
 * A module of `functions`, each exported under its name, over one memory: its own, exported as `memory`,
 * of `pages` × 64 KiB, or one imported as `env.memory` (another module's, e.g. tfjs-backend-wasm's heap).
 */
export function encodeModule(
  functions: readonly WasmFunction[],
  memory: { readonly pages: number } | 'imported',
): Uint8Array<ArrayBuffer> {
  const types = functions.map((fn) => [
    0x60,
    ...vector(fn.params.map((type) => [type])),
    ...vector(fn.results.map((type) => [type])),
  ]);
  const code = functions.map((fn) => {
    const locals = vector(fn.locals.map((type) => [...unsignedLeb(1), type]));
    const body = [...locals, ...fn.body.flat(), ...op.end];
    return [...unsignedLeb(body.length), ...body];
  });
  const imported = memory === 'imported';
  const exports = [
    ...(imported ? [] : [[...name('memory'), 0x02, 0]]),
    ...functions.map((fn, index) => [...name(fn.name), 0x00, ...unsignedLeb(index)]),
  ];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector(types)),
    // An imported memory of at least 0 pages and no maximum matches any memory.
    ...(imported ? section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x00, 0]])) : []),
    ...section(3, vector(functions.map((_, index) => unsignedLeb(index)))),
    ...(imported ? [] : section(5, vector([[0x00, ...unsignedLeb(memory.pages)]]))),
    ...section(7, vector(exports)),
    ...section(10, vector(code)),
  ]);
}

// The compile target's libraries leave WebAssembly out; Node 20 and every current browser have it.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports?: object) => { exports: Record<string, unknown> };
};

/**
 * Compiles and instantiates a module synchronously (fine for small modules; browsers allow 4 KiB on the
 * main thread), with `memory` as its `env.memory` when it imports one.
 */
export function instantiate(bytes: Uint8Array, memory?: object): Record<string, unknown> {
  const imports = memory === undefined ? undefined : { env: { memory } };
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), imports).exports;
}
