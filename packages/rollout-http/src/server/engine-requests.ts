import type { GenerateRequest } from '@moerl/core';
import { HttpError } from './http-plumbing.js';
import type { Tokenizer } from './route-context.js';

/** Token-id prompts, checked against the vocabulary; `field` names them in errors (`input_ids`, `prompt`). */
export function checkedPrompts(
  prompts: readonly (readonly number[])[],
  field: string,
  vocabSize: number,
): Int32Array[] {
  prompts.forEach((prompt, index) => {
    const bad = prompt.find((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
    if (bad !== undefined) {
      throw new HttpError(
        400,
        `${field}[${index}]: token id ${bad} is outside the vocabulary [0, ${vocabSize})`,
      );
    }
    if (prompt.length === 0) throw new HttpError(400, `${field}[${index}]: prompt ${index} is empty`);
  });
  return prompts.map((prompt) => Int32Array.from(prompt));
}

/** Texts as token ids; without a tokenizer the request must send ids (`idsField`). */
export function tokenized(
  texts: readonly string[],
  tokenizer: Tokenizer | undefined,
  field: string,
  idsField: string,
): number[][] {
  if (tokenizer === undefined) {
    throw new HttpError(400, `${field}: this server has no tokenizer; send ${idsField}`);
  }
  return texts.map((text) => tokenizer.encode(text));
}

/** `routed_experts_start_len` / `routed_experts_prompt_start` may skip at most the shortest prompt. */
export function checkPromptStart(start: number, prompts: readonly Int32Array[], field: string): void {
  const shortest = Math.min(...prompts.map((prompt) => prompt.length));
  if (start > shortest) {
    throw new HttpError(400, `${field}: must be at most the prompt length ${shortest}, found ${start}`);
  }
}

/**
 * One engine request per sample, prompt-major (index = prompt × n + sample), so sample j of the call
 * draws the engine's fork j of the call's seed.
 */
export function sampleRequests(prompts: readonly Int32Array[], n: number, baseId: string): GenerateRequest[] {
  return prompts.flatMap((promptIds, prompt) =>
    Array.from({ length: n }, (_, sample) => ({
      id: `${baseId}-${prompt}-${sample}`,
      groupId: `${baseId}-${prompt}`,
      promptIds,
    })),
  );
}

/**
 * The stop tokens of a request as SGLang and vLLM read them: the request's own `stop_token_ids` plus the
 * model's EOS (`eosTokenId` of its config), unless the request sets `ignore_eos`.
 */
export function stopTokenIdsOf(
  given: readonly number[] | null | undefined,
  ignoreEos: boolean | null | undefined,
  eosTokenId: number | undefined,
): number[] {
  const ids = [...(given ?? [])];
  if (ignoreEos !== true && eosTokenId !== undefined && !ids.includes(eosTokenId)) ids.push(eosTokenId);
  return ids;
}
