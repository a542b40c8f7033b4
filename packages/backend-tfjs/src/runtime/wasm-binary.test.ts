import { describe, expect, it } from 'vitest';
import { encodeModule, I32, instantiate, op, type WasmFunction } from './wasm-binary.js';

describe('encodeModule', () => {
  it('encodes constants of every LEB128 length, locals, loops and an exported memory', () => {
    const constants = [0, 1, -1, 63, 64, -64, -65, 127, 128, 8191, -8193, 2 ** 31 - 1, -(2 ** 31)];
    const bytes = encodeModule(
      [
        ...constants.map(
          (value, index): WasmFunction => ({
            name: `c${index}`,
            params: [],
            results: [I32],
            locals: [],
            body: [op.i32Const(value)],
          }),
        ),
        {
          // Σ 0..n−1 by a loop over a local counter.
          name: 'triangle',
          params: [I32],
          results: [I32],
          locals: [I32, I32],
          body: [
            op.block,
            op.loop,
            ...[op.localGet(1), op.localGet(0), op.i32GeU, op.brIf(1)],
            ...[op.localGet(2), op.localGet(1), op.i32Add, op.localSet(2)],
            ...[op.localGet(1), op.i32Const(1), op.i32Add, op.localSet(1), op.br(0)],
            op.end,
            op.end,
            op.localGet(2),
          ],
        } satisfies WasmFunction,
      ],
      { pages: 3 },
    );
    const exports = instantiate(bytes);
    for (const [index, value] of constants.entries()) {
      expect((exports[`c${index}`] as () => number)()).toBe(value);
    }
    expect((exports.triangle as (n: number) => number)(100)).toBe(4950);
    expect((exports.memory as { buffer: ArrayBuffer }).buffer.byteLength).toBe(3 * 65_536);
  });
});
