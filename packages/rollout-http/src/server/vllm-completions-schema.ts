import { z } from 'zod';
import { tokenId } from './generate-schema.js';

const tokenList = z.array(tokenId).min(1);

/**
 * The `/v1/completions` body `moerl serve` accepts: the subset of vLLM's CompletionRequest it implements,
 * under vLLM's names. Unknown fields are refused rather than ignored. Optional fields accept `null` (as
 * vLLM's do) meaning "not given". `stream` and `logprobs` take any value here so the route can say why
 * the values it does not implement are refused.
 */
export const completionsBodySchema = z.strictObject({
  /** Any name; echoed in the response. */
  model: z.string().nullish(),
  /** Token ids, a list of token-id lists, or (with a tokenizer) a text or a list of texts. */
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenList, z.array(tokenList).min(1)]),
  n: z.number().int().min(1).max(256).nullish(),
  /** vLLM's default is 16. */
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).nullish(),
  top_p: z.number().gt(0).lte(1).nullish(),
  /** −1 or 0 turn it off. */
  top_k: z.number().int().min(-1).nullish(),
  seed: z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER).nullish(),
  stop_token_ids: z.array(tokenId).nullish(),
  /** Generation stops at the model's EOS (`eos_token_id`) too, unless this is true. */
  ignore_eos: z.boolean().nullish(),
  /** Only 0 (the sampled token's logprob) is implemented. */
  logprobs: z.number().int().min(0).nullish(),
  return_tokens_as_token_ids: z.boolean().nullish(),
  return_token_ids: z.boolean().nullish(),
  /** Only false: streamed OpenAI chunks never carry routing. */
  stream: z.boolean().nullish(),
  routed_experts_prompt_start: z.number().int().min(0).nullish(),
});

export type CompletionsBody = z.infer<typeof completionsBodySchema>;
