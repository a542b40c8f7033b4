import { createRoutingRecord, MoerlError } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { config, flat, moeLayers, moeRows } from '../__fixtures__/routing-rows.js';
import { base64Of, expandToHiddenLayers, type FixtureDtype, npyOf } from '../__fixtures__/wire-writers.js';
import {
  decodeVllmChoiceRouting,
  decodeVllmCompletionResponse,
  decodeVllmStreamRouting,
  importVllmRoutingDump,
  type VllmChoiceContext,
} from './vllm.js';

const context = (overrides: Partial<VllmChoiceContext> = {}): VllmChoiceContext => ({
  requestId: 'cmpl-3',
  config,
  promptLength: 5,
  generatedLength: 3,
  promptStart: 0,
  ...overrides,
});

/** Current vLLM: base64 .npy of (prompt + generated − 1 − start, num_hidden_layers, K), dense zeros. */
function npyChoice(start = 0, dtype: FixtureDtype = '|u1', version: 1 | 2 | 3 = 1, fortranOrder = false) {
  const rows = moeRows(7).slice(start);
  const values = expandToHiddenLayers(rows, moeLayers, config.numLayers, 2);
  const npy = npyOf(values, [rows.length, config.numLayers, 2], dtype, { version, fortranOrder });
  return base64Of(npy);
}

const codeOf = (run: () => unknown) => {
  try {
    run();
  } catch (error) {
    return MoerlError.isInstance(error) ? error.code : String(error);
  }
  return 'no error';
};

describe('vLLM current format (.npy per choice)', () => {
  it.each<[FixtureDtype, 1 | 2 | 3, boolean]>([
    ['|u1', 1, false],
    ['<u2', 2, false],
    ['>u2', 1, false],
    ['<i2', 3, false],
    ['>i4', 2, false],
    ['|u1', 1, true],
  ])('reads %s, version %i, fortran %s', (dtype, version, fortran) => {
    const body = { choices: [{ index: 0, routed_experts: npyChoice(0, dtype, version, fortran) }] };
    const record = decodeVllmChoiceRouting(body, 0, context());
    expect([...record.experts]).toEqual(flat(moeRows(7)));
  });

  it('applies routed_experts_prompt_start kept by the client', () => {
    const body = { choices: [{ routed_experts: npyChoice(5) }] };
    expect([...decodeVllmChoiceRouting(body, 0, context({ promptStart: 5 })).experts]).toEqual(
      flat(moeRows(7).slice(5)),
    );
    expect(() => decodeVllmChoiceRouting(body, 0, context())).toThrow(/2 rows, expected .* = 7/);
  });

  it('a server without routed_experts_prompt_start sends every row; they are read from the start on', () => {
    const body = { choices: [{ routed_experts: npyChoice(0) }] };
    expect([...decodeVllmChoiceRouting(body, 0, context({ promptStart: 5 })).experts]).toEqual(
      flat(moeRows(7).slice(5)),
    );
  });

  it('n > 1: every choice carries its own full array', () => {
    const body = { choices: [{ routed_experts: npyChoice() }, { routed_experts: npyChoice() }] };
    expect(decodeVllmChoiceRouting(body, 1, context()).positions).toBe(7);
  });

  it('null or absent routing is ROUTING_MISSING', () => {
    expect(codeOf(() => decodeVllmChoiceRouting({ choices: [{ routed_experts: null }] }, 0, context()))).toBe(
      'ROUTING_MISSING',
    );
    expect(codeOf(() => decodeVllmChoiceRouting({ choices: [{ text: 'x' }] }, 0, context()))).toBe(
      'ROUTING_MISSING',
    );
  });
});

describe('vLLM short-lived split format', () => {
  const generatedRows = moeRows(7).slice(5);

  it('joins prompt_routed_experts (P rows) and choice rows (generated − 1), MoE layers only', () => {
    const body = { prompt_routed_experts: moeRows(5), choices: [{ routed_experts: generatedRows }] };
    expect([...decodeVllmChoiceRouting(body, 0, context()).experts]).toEqual(flat(moeRows(7)));
  });

  it('fills −1 prefix-cache rows from the client cache, else ROUTING_MISSING', () => {
    const prompt = moeRows(5);
    prompt[0] = [
      [-1, -1],
      [-1, -1],
    ];
    prompt[1] = [
      [-1, -1],
      [-1, -1],
    ];
    const body = { prompt_routed_experts: prompt, choices: [{ routed_experts: generatedRows }] };
    expect(codeOf(() => decodeVllmChoiceRouting(body, 0, context()))).toBe('ROUTING_MISSING');
    const cachedPromptRouting = createRoutingRecord(
      { positions: 2, moeLayers: 2, topK: 2, numExperts: 6 },
      flat(moeRows(2)),
    );
    expect([...decodeVllmChoiceRouting(body, 0, context({ cachedPromptRouting })).experts]).toEqual(
      flat(moeRows(7)),
    );
  });

  it('rejects a partial −1 row and a ragged nested list', () => {
    const prompt = moeRows(5);
    prompt[2]![0] = [-1, 3];
    const body = { prompt_routed_experts: prompt, choices: [{ routed_experts: generatedRows }] };
    expect(codeOf(() => decodeVllmChoiceRouting(body, 0, context()))).toBe('ROUTING_SHAPE');
    const ragged = moeRows(5);
    ragged[3] = [[1, 2]];
    expect(() =>
      decodeVllmChoiceRouting(
        { prompt_routed_experts: ragged, choices: [{ routed_experts: generatedRows }] },
        0,
        context(),
      ),
    ).toThrow(/prompt_routed_experts\[3\]/);
  });
});

describe('vLLM first engines (Python API dumps)', () => {
  const values = expandToHiddenLayers(moeRows(7), moeLayers, config.numLayers, 2);

  it('imports an int32 .npy dump and a nested JSON list', () => {
    const nested = moeRows(7).map((_, row) =>
      Array.from({ length: 6 }, (_, layer) => values.slice((row * 6 + layer) * 2, (row * 6 + layer) * 2 + 2)),
    );
    const fromNpy = importVllmRoutingDump(npyOf(values, [7, 6, 2], '<i4'), context());
    const fromJson = importVllmRoutingDump(nested, context());
    expect([...fromNpy.experts]).toEqual(flat(moeRows(7)));
    expect([...fromJson.experts]).toEqual(flat(moeRows(7)));
  });

  it('rejects a dump one row short', () => {
    expect(() => importVllmRoutingDump(npyOf(values.slice(0, 72), [6, 6, 2], '<i4'), context())).toThrow(
      /6 rows, expected .* = 7/,
    );
  });
});

describe('vLLM streamed completions', () => {
  it('chunks without routing (all of them today) are ROUTING_MISSING', () => {
    const chunks = [
      { choices: [{ index: 0, text: 'a' }] },
      { choices: [{ index: 0, text: 'b', finish_reason: 'length' }] },
    ];
    expect(codeOf(() => decodeVllmStreamRouting(chunks, 0, context()))).toBe('ROUTING_MISSING');
    expect(codeOf(() => decodeVllmStreamRouting([], 0, context()))).toBe('ROUTING_MISSING');
  });

  it('a last chunk with a full array is decoded like a non-streamed body', () => {
    const chunks = [{ choices: [{ index: 1, routed_experts: npyChoice() }] }];
    expect(decodeVllmStreamRouting(chunks, 1, context()).positions).toBe(7);
  });
});

describe('vLLM /v1/completions responses', () => {
  // Prompt 5 tokens, 3 generated: 7 routing rows.
  const completion = (overrides: Record<string, unknown> = {}, start = 0) => ({
    index: 0,
    text: '',
    token_ids: [4, 9, 2],
    logprobs: { tokens: ['token_id:4', 'token_id:9', 'token_id:2'], token_logprobs: [-0.5, -1.25, -2] },
    finish_reason: 'length',
    routed_experts: npyChoice(start),
    ...overrides,
  });
  const contexts = (count: number, promptStart = 0) =>
    Array.from({ length: count }, (_, index) => ({
      requestId: `r${index}`,
      config,
      promptLength: 5,
      promptStart,
      wantRouting: true,
      wantLogprobs: true,
    }));

  it('reads ids, logprobs, finish reason and routing of each choice, matched by index', () => {
    const body = { choices: [completion({ index: 1, finish_reason: 'stop' }), completion()] };
    const [first, second] = decodeVllmCompletionResponse(body, contexts(2));
    expect([...first!.outputIds]).toEqual([4, 9, 2]);
    expect([...first!.logprobs!]).toEqual([-0.5, -1.25, -2]);
    expect(first!.finishReason).toBe('length');
    expect(second!.finishReason).toBe('stop');
    expect([...first!.routing!.experts]).toEqual(flat(moeRows(7)));
  });

  it('takes ids from `token_id:<id>` logprob tokens when token_ids is absent, and refuses text alone', () => {
    const [decoded] = decodeVllmCompletionResponse(
      { choices: [completion({ token_ids: undefined })] },
      contexts(1),
    );
    expect([...decoded!.outputIds]).toEqual([4, 9, 2]);
    const textOnly = completion({ token_ids: undefined, logprobs: { tokens: ['a', 'b', 'c'] } });
    expect(() => decodeVllmCompletionResponse({ choices: [textOnly] }, contexts(1))).toThrow(
      /logprobs\.tokens\[0\] must be 'token_id:<id>'/,
    );
    const neither = completion({ token_ids: undefined, logprobs: null });
    expect(() => decodeVllmCompletionResponse({ choices: [neither] }, contexts(1))).toThrow(
      /return_token_ids/,
    );
  });

  it('returns routing rows from routed_experts_prompt_start on, in either format', () => {
    const [current] = decodeVllmCompletionResponse({ choices: [completion({}, 3)] }, contexts(1, 3));
    expect([...current!.routing!.experts]).toEqual(flat(moeRows(7).slice(3)));
    // The older split format ignores the start and sends every prompt row: the client slices.
    const split = {
      prompt_routed_experts: moeRows(5),
      choices: [completion({ routed_experts: moeRows(7).slice(5) })],
    };
    const [older] = decodeVllmCompletionResponse(split, contexts(1, 3));
    expect([...older!.routing!.experts]).toEqual(flat(moeRows(7).slice(3)));
  });

  it('refuses a wrong choice count, duplicate indices, short logprobs and missing routing', () => {
    expect(() => decodeVllmCompletionResponse({ choices: [completion()] }, contexts(2))).toThrow(
      /returned 1 choices, expected 2/,
    );
    expect(() =>
      decodeVllmCompletionResponse({ choices: [completion(), completion()] }, contexts(2)),
    ).toThrow(/choices\[1\] must be a choice with a unique index/);
    const short = completion({ logprobs: { tokens: [], token_logprobs: [-1] } });
    expect(() => decodeVllmCompletionResponse({ choices: [short] }, contexts(1))).toThrow(
      /token_logprobs must be a list of 3 numbers/,
    );
    const off = { choices: [completion({ routed_experts: null })] };
    expect(codeOf(() => decodeVllmCompletionResponse(off, contexts(1)))).toBe('ROUTING_MISSING');
    // One row short (an off-by-one in the server's start) is a shape error, never a shifted record.
    expect(codeOf(() => decodeVllmCompletionResponse({ choices: [completion({}, 4)] }, contexts(1, 3)))).toBe(
      'ROUTING_SHAPE',
    );
  });
});
