import { decodeSglangGenerateResponse } from '../protocols/sglang.js';
import type { ClientProtocol, ProtocolGeneration } from './client-protocol.js';

/** SGLang's `/generate` (also what `moerl serve` speaks); `compactRouting` is a moerl extension. */
export const sglangClientProtocol: ClientProtocol = {
  name: 'sglang',
  path: '/generate',
  routingFlag: '--enable-return-routed-experts',
  body(call) {
    const { params } = call;
    const n = call.requestIds.length;
    return {
      // No rid: a retried request would reuse it while the server may still hold the first attempt, and
      // SGLang refuses a duplicate rid.
      input_ids: [...call.promptIds],
      sampling_params: {
        temperature: params.temperature,
        top_p: params.topP,
        top_k: params.topK === 0 ? -1 : params.topK,
        max_new_tokens: params.maxNewTokens,
        stop_token_ids: [...params.stopTokenIds],
        ...(call.seed === undefined ? {} : { sampling_seed: call.seed }),
        ...(n === 1 ? {} : { n }),
      },
      return_logprob: true,
      return_routed_experts: true,
      ...(call.startLen > 0 ? { routed_experts_start_len: call.startLen } : {}),
      ...(call.compactRouting ? { routed_experts_compact: true } : {}),
    };
  },
  decode(json, call) {
    const contexts = call.requestIds.map((requestId) => ({
      requestId,
      config: call.config,
      promptLength: call.promptIds.length,
      startLen: call.startLen,
      wantRouting: true,
      wantLogprobs: true,
    }));
    return decodeSglangGenerateResponse(json, contexts) as ProtocolGeneration[];
  },
  routingChars(json) {
    let chars = 0;
    for (const item of Array.isArray(json) ? json : [json]) {
      const routed = (item as { meta_info?: { routed_experts?: unknown } })?.meta_info?.routed_experts;
      if (typeof routed === 'string') chars += routed.length;
    }
    return chars;
  },
};
