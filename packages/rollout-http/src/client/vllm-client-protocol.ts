import { decodeVllmCompletionResponse } from '../protocols/vllm.js';
import type { ClientProtocol, ProtocolGeneration } from './client-protocol.js';

/**
 * vLLM's OpenAI `/v1/completions` with `--enable-return-routed-experts`: routing rides on each choice, there
 * is no weight version, and `routed_experts_prompt_start` skips rows the client holds. `model` names the
 * served model (vLLM's first served model when absent).
 */
export function vllmClientProtocol(model: string | undefined): ClientProtocol {
  return {
    name: 'vllm',
    path: '/v1/completions',
    routingFlag: '--enable-return-routed-experts (which needs prefix caching)',
    body(call) {
      const { params } = call;
      const n = call.requestIds.length;
      return {
        ...(model === undefined ? {} : { model }),
        prompt: [...call.promptIds],
        ...(n === 1 ? {} : { n }),
        max_tokens: params.maxNewTokens,
        temperature: params.temperature,
        top_p: params.topP,
        top_k: params.topK === 0 ? -1 : params.topK,
        stop_token_ids: [...params.stopTokenIds],
        ...(call.seed === undefined ? {} : { seed: call.seed }),
        // logprobs: 0 is the sampled token's logprob; ids come as token_ids or as `token_id:<id>` tokens.
        logprobs: 0,
        return_token_ids: true,
        return_tokens_as_token_ids: true,
        ...(call.startLen > 0 ? { routed_experts_prompt_start: call.startLen } : {}),
      };
    },
    decode(json, call) {
      const decoded = decodeVllmCompletionResponse(
        json,
        call.requestIds.map((requestId) => ({
          requestId,
          config: call.config,
          promptLength: call.promptIds.length,
          promptStart: call.startLen,
          wantRouting: true,
          wantLogprobs: true,
          ...(call.heldRouting === undefined ? {} : { cachedPromptRouting: call.heldRouting }),
        })),
      );
      return decoded.map(
        (choice): ProtocolGeneration => ({
          outputIds: choice.outputIds,
          logprobs: choice.logprobs!,
          finishReason: choice.finishReason,
          weightVersion: undefined,
          weightVersionSpans: [],
          routing: choice.routing!,
        }),
      );
    },
    routingChars(json) {
      const choices = (json as { choices?: unknown })?.choices;
      let chars = 0;
      if (Array.isArray(choices)) {
        for (const choice of choices) {
          const routed = (choice as { routed_experts?: unknown })?.routed_experts;
          if (typeof routed === 'string') chars += routed.length;
        }
      }
      return chars;
    },
  };
}
