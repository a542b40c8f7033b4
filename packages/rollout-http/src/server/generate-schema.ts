import { z } from 'zod';

/** A token id on the wire (range-checked against the vocabulary later, by the route). */
export const tokenId = z
  .number()
  .int()
  .min(0)
  .max(2 ** 31 - 1);
const tokenList = z.array(tokenId).min(1);

/** SGLang's `sampling_params`, the subset `moerl serve` implements; unknown keys are refused, not ignored. */
export const samplingParamsSchema = z.strictObject({
  temperature: z.number().min(0).optional(),
  top_p: z.number().gt(0).lte(1).optional(),
  /** −1 (SGLang's "off") or a positive k. */
  top_k: z.number().int().min(-1).optional(),
  max_new_tokens: z.number().int().min(1).optional(),
  stop_token_ids: z.array(tokenId).optional(),
  /** Generation stops at the model's EOS (`eos_token_id`) too, unless this is true. */
  ignore_eos: z.boolean().optional(),
  n: z.number().int().min(1).max(256).optional(),
  sampling_seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});

/** The `/generate` body `moerl serve` accepts (a subset of SGLang's GenerateReqInput). */
export const generateBodySchema = z
  .strictObject({
    text: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    input_ids: z.union([tokenList, z.array(tokenList).min(1)]).optional(),
    sampling_params: samplingParamsSchema.optional(),
    rid: z.union([z.string(), z.array(z.string())]).optional(),
    return_logprob: z.boolean().optional(),
    return_routed_experts: z.boolean().optional(),
    routed_experts_start_len: z.number().int().min(0).optional(),
    /** moerl extension: send routing as uint8 / uint16 named by `routed_experts_dtype` instead of int32. */
    routed_experts_compact: z.boolean().optional(),
    stream: z.literal(false).optional(),
  })
  .refine((body) => (body.text === undefined) !== (body.input_ids === undefined), {
    message: 'exactly one of text and input_ids must be given',
  });

export type GenerateBody = z.infer<typeof generateBodySchema>;

/** SGLang's `/update_weights_from_disk` body. */
export const updateWeightsBodySchema = z.strictObject({
  model_path: z.string().min(1),
  /** The version to stamp; default: the current version + 1. Integer strings only (core versions are numbers). */
  weight_version: z.union([z.number().int().min(0), z.string().regex(/^\d+$/)]).optional(),
  load_format: z.string().optional(),
  flush_cache: z.boolean().optional(),
});

export type UpdateWeightsBody = z.infer<typeof updateWeightsBodySchema>;

/** One line per problem, each naming its field path. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : 'body'}: ${issue.message}`)
    .join('; ');
}
