import { MoerlError } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { config, flat, moeLayers, moeRows } from '../__fixtures__/routing-rows.js';
import { base64Of, expandToHiddenLayers, integerBytes } from '../__fixtures__/wire-writers.js';
import {
  decodeSglangGenerateItem,
  decodeSglangGenerateResponse,
  decodeSglangGenerateStream,
  decodeSglangOpenAiRouting,
  type SglangRequestContext,
} from './sglang.js';

const context = (overrides: Partial<SglangRequestContext> = {}): SglangRequestContext => ({
  requestId: 'req-7',
  config,
  promptLength: 4,
  startLen: 0,
  wantRouting: true,
  wantLogprobs: true,
  ...overrides,
});

/** A /generate item as SGLang builds it: routing of rows [start, prompt + output − 1), int32 base64. */
function item(outputIds: number[], startLen = 0, promptLength = 4, dtype?: 'uint8' | 'uint16') {
  const rows = moeRows(promptLength + outputIds.length - 1).slice(startLen);
  const hidden = expandToHiddenLayers(rows, moeLayers, config.numLayers, 2);
  const bytes = integerBytes(hidden, dtype === 'uint8' ? '|u1' : dtype === 'uint16' ? '<u2' : '<i4');
  return {
    text: '',
    output_ids: outputIds,
    meta_info: {
      id: 'x',
      finish_reason: { type: 'length', length: outputIds.length },
      output_token_logprobs: outputIds.map((id, index) => [-0.25 * (index + 1), id, null]),
      routed_experts: base64Of(bytes),
      weight_version: '3',
      ...(dtype === undefined ? {} : { routed_experts_dtype: dtype }),
    },
  };
}

const codeOf = (run: () => unknown) => {
  try {
    run();
  } catch (error) {
    return MoerlError.isInstance(error) ? error.code : String(error);
  }
  return 'no error';
};

describe('SGLang /generate decoding', () => {
  it('decodes ids, logprobs, finish reason, weight version and int32 routing with dense layers dropped', () => {
    const decoded = decodeSglangGenerateItem(item([9, 4, 2]), context());
    expect([...decoded.outputIds]).toEqual([9, 4, 2]);
    expect([...decoded.logprobs!]).toEqual([-0.25, -0.5, -0.75]);
    expect(decoded.finishReason).toBe('length');
    expect(decoded.weightVersion).toBe('3');
    expect(decoded.routing!.positions).toBe(6);
    expect([...decoded.routing!.experts]).toEqual(flat(moeRows(6)));
  });

  it('keeps the start offset on the client side: rows [N, prompt + output − 1)', () => {
    const decoded = decodeSglangGenerateItem(item([9, 4, 2], 4), context({ startLen: 4 }));
    expect([...decoded.routing!.experts]).toEqual(flat(moeRows(6).slice(4)));
    // The same body read as if no offset had been sent is an off-by-N error, not a silent misread.
    expect(() => decodeSglangGenerateItem(item([9, 4, 2], 4), context())).toThrow(/2 rows, expected .* = 6/);
  });

  it('a server that ignored the start offset and sent every row is read from the offset on', () => {
    const decoded = decodeSglangGenerateItem(item([9, 4, 2], 0), context({ startLen: 4 }));
    expect([...decoded.routing!.experts]).toEqual(flat(moeRows(6).slice(4)));
    // Any other count is still refused: one row short of either reading.
    expect(() => decodeSglangGenerateItem(item([9, 4, 2], 1), context({ startLen: 4 }))).toThrow(
      /5 rows, expected .* = 2/,
    );
  });

  it('reads 0 rows from an empty string (one output token, start = prompt)', () => {
    const body = item([9], 4);
    expect(body.meta_info.routed_experts).toBe('');
    expect(decodeSglangGenerateItem(body, context({ startLen: 4 })).routing!.positions).toBe(0);
  });

  it('reads compact uint8 and uint16 routing named by routed_experts_dtype', () => {
    for (const dtype of ['uint8', 'uint16'] as const) {
      const decoded = decodeSglangGenerateItem(item([1, 2], 0, 4, dtype), context());
      expect([...decoded.routing!.experts]).toEqual(flat(moeRows(5)));
    }
    // Compact bytes read as int32 (dtype field lost) are caught: the row count no longer fits.
    const body = item([1, 2], 0, 4, 'uint8');
    const { routed_experts_dtype: _dropped, ...meta } = body.meta_info;
    expect(codeOf(() => decodeSglangGenerateItem({ ...body, meta_info: meta }, context()))).toBe(
      'ROUTING_SHAPE',
    );
  });

  it('missing routing when it was asked for is ROUTING_MISSING naming the flag', () => {
    const body = item([1, 2]);
    const { routed_experts: _dropped, ...meta } = body.meta_info;
    expect(() => decodeSglangGenerateItem({ ...body, meta_info: meta }, context())).toThrow(
      /req-7.*--enable-return-routed-experts/,
    );
    expect(codeOf(() => decodeSglangGenerateItem({ ...body, meta_info: meta }, context()))).toBe(
      'ROUTING_MISSING',
    );
    expect(
      decodeSglangGenerateItem({ ...body, meta_info: meta }, context({ wantRouting: false })).routing,
    ).toBe(null);
  });

  it('rejects logprobs that do not line up with output_ids', () => {
    const body = item([1, 2]);
    body.meta_info.output_token_logprobs[1]![1] = 7;
    expect(() => decodeSglangGenerateItem(body, context())).toThrow(/output_token_logprobs\[1\]/);
  });

  it('decodes an n > 1 array, each item with its own complete routing, and checks the count', () => {
    const body = [item([1, 2]), item([3, 4, 5])];
    const decoded = decodeSglangGenerateResponse(body, [context(), context()]);
    expect(decoded.map((entry) => entry.routing!.positions)).toEqual([5, 6]);
    expect(() => decodeSglangGenerateResponse(body, [context()])).toThrow(/2 items, expected 1/);
  });

  it('reads weight versions from sglext in newer builds, with spans', () => {
    const body = item([1, 2]);
    const { weight_version: _v, ...meta } = body.meta_info;
    const decoded = decodeSglangGenerateItem(
      {
        ...body,
        meta_info: {
          ...meta,
          sglext: {
            weight_version: '8',
            weight_versions: [
              { version: '7', start: 0, end: 1 },
              { version: '8', start: 1, end: 2 },
            ],
          },
        },
      },
      context(),
    );
    expect(decoded.weightVersion).toBe('8');
    expect(decoded.weightVersionSpans.map((span) => span.version)).toEqual(['7', '8']);
  });

  it('a stream carries routing in its last chunk only', () => {
    const last = item([1, 2, 3]);
    const first = { ...item([1]), meta_info: { ...item([1]).meta_info, routed_experts: undefined } };
    expect(decodeSglangGenerateStream([first, last], context()).routing!.positions).toBe(6);
    expect(codeOf(() => decodeSglangGenerateStream([last, first], context()))).toBe('ROUTING_MISSING');
    // Incremental output: ids are concatenated over chunks.
    const pieces = [{ output_ids: [1] }, { output_ids: [2] }, { ...last, output_ids: [3] }];
    expect([...decodeSglangGenerateStream(pieces, context(), true).outputIds]).toEqual([1, 2, 3]);
  });
});

describe('SGLang rows of zeros', () => {
  /** A /generate item whose routing is `hiddenIds` (flat `[rows][6 hidden layers][k]`), as int32 base64. */
  const withRouting = (outputIds: number[], hiddenIds: number[]) => ({
    ...item(outputIds),
    meta_info: { ...item(outputIds).meta_info, routed_experts: base64Of(integerBytes(hiddenIds, '<i4')) },
  });

  it('top-1: rows whose ids are all 0 decode as expert 0 (valid routing)', () => {
    const top1 = { ...config, topK: 1 };
    // prompt 4 + output 2 − 1 = 5 rows × 6 hidden layers; MoE layers are 1 and 5.
    const hiddenIds = new Array<number>(5 * 6).fill(0);
    hiddenIds[2 * 6 + 1] = 4;
    const decoded = decodeSglangGenerateItem(withRouting([7, 8], hiddenIds), context({ config: top1 }));
    expect([...decoded.routing!.experts]).toEqual([0, 0, 0, 0, 4, 0, 0, 0, 0, 0]);
  });

  it('top-2: a never-captured row (zero-initialised buffer) is ROUTING_MISSING naming request and row', () => {
    const hiddenIds = expandToHiddenLayers(moeRows(5), moeLayers, config.numLayers, 2);
    hiddenIds.fill(0, 4 * 12, 5 * 12); // the last row was never written
    const run = () => decodeSglangGenerateItem(withRouting([7, 8], hiddenIds), context());
    expect(codeOf(run)).toBe('ROUTING_MISSING');
    expect(run).toThrow(/request req-7: row 4 is all zeros/);
  });
});

describe('SGLang OpenAI endpoints', () => {
  it('reads sglext.routed_experts at response level for one choice', () => {
    const { routed_experts } = item([1, 2, 3]).meta_info;
    const body = { choices: [{ index: 0, text: '' }], sglext: { routed_experts } };
    const decoded = decodeSglangOpenAiRouting(body, context(), 3);
    expect(decoded.routing.positions).toBe(6);
    expect([...decoded.routing.experts]).toEqual(flat(moeRows(6)));
    expect(decoded.choices).toEqual([decoded.routing]);
    expect(decoded.missingChoices).toEqual([]);
  });

  it('n > 1: decodes choice 0 and reports each other choice as ROUTING_MISSING naming it', () => {
    const { routed_experts } = item([1, 2, 3]).meta_info;
    // Choices listed out of order: routing belongs to index 0 whatever its position.
    const three = { choices: [{ index: 2 }, { index: 0 }, { index: 1 }], sglext: { routed_experts } };
    const decoded = decodeSglangOpenAiRouting(three, context(), 3);
    expect([...decoded.routing.experts]).toEqual(flat(moeRows(6)));
    expect(decoded.missingChoices).toEqual([1, 2]);
    expect(decoded.choices).toHaveLength(3);
    expect(decoded.choices[0]).toBe(decoded.routing);
    for (const index of [1, 2]) {
      const error = decoded.choices[index];
      expect(MoerlError.isInstance(error, 'ROUTING_MISSING')).toBe(true);
      expect((error as MoerlError).message).toMatch(
        new RegExp(`request req-7: choice ${index} of 3 has no routing`),
      );
      expect((error as MoerlError).details).toMatchObject({ choice: index, choices: 3 });
    }
  });

  it('reports absent routing and refuses malformed choice indices', () => {
    expect(codeOf(() => decodeSglangOpenAiRouting({ choices: [{}] }, context(), 3))).toBe('ROUTING_MISSING');
    const { routed_experts } = item([1, 2, 3]).meta_info;
    const twice = { choices: [{ index: 0 }, { index: 0 }], sglext: { routed_experts } };
    expect(codeOf(() => decodeSglangOpenAiRouting(twice, context(), 3))).toBe('ROUTING_SHAPE');
    expect(() => decodeSglangOpenAiRouting(twice, context(), 3)).toThrow(/choices\[1\]\.index/);
  });
});
