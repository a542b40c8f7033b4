import { type GenerateRequest, type ModelConfig, MoerlError, type SamplingParams } from '@moerl/core';

function invalid(index: number, field: string, expected: string, found: unknown): MoerlError {
  const shown =
    typeof found === 'number' || typeof found === 'string' ? String(found) : JSON.stringify(found);
  return new MoerlError(
    'INVALID_ARGUMENT',
    `Request ${index}: ${field} must be ${expected}, found ${shown}`,
    {
      details: { request: index, field, expected, found },
    },
  );
}

/** Checks one request's sampling params (after merging its overrides); throws INVALID_ARGUMENT naming the field. */
export function checkSamplingParams(params: SamplingParams, index: number): void {
  const { temperature, topP, topK, maxNewTokens, stopTokenIds, seed } = params;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0)
    throw invalid(index, 'samplingParams.temperature', 'a finite number ≥ 0', temperature);
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1))
    throw invalid(index, 'samplingParams.topP', 'a number in (0, 1]', topP);
  if (!Number.isInteger(topK) || topK < 0)
    throw invalid(index, 'samplingParams.topK', 'a non-negative integer (0 disables it)', topK);
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1)
    throw invalid(index, 'samplingParams.maxNewTokens', 'a positive integer', maxNewTokens);
  if (!Array.isArray(stopTokenIds) || !stopTokenIds.every((id) => Number.isInteger(id)))
    throw invalid(index, 'samplingParams.stopTokenIds', 'an array of integer token ids', stopTokenIds);
  if (!Number.isSafeInteger(seed)) throw invalid(index, 'samplingParams.seed', 'a safe integer', seed);
}

/** Checks a request's prompt against the model; throws INVALID_ARGUMENT naming the request and field. */
export function checkRequest(
  config: ModelConfig,
  request: GenerateRequest,
  params: SamplingParams,
  index: number,
): void {
  if (request === null || typeof request !== 'object') throw invalid(index, 'request', 'an object', request);
  const prompt = request.promptIds;
  if (prompt === null || typeof prompt !== 'object' || typeof prompt.length !== 'number')
    throw invalid(index, 'promptIds', 'an Int32Array of token ids', prompt);
  if (prompt.length === 0)
    throw invalid(index, 'promptIds', 'a non-empty array of token ids', 'an empty prompt');
  for (let position = 0; position < prompt.length; position++) {
    const id = prompt[position]!;
    if (!Number.isInteger(id) || id < 0 || id >= config.vocabSize) {
      throw invalid(index, `promptIds[${position}]`, `a token id in [0, ${config.vocabSize})`, id);
    }
  }
  const { seedFork } = request;
  if (seedFork !== undefined && !(Number.isSafeInteger(seedFork) && seedFork >= 0))
    throw invalid(index, 'seedFork', 'a non-negative safe integer (the sampler fork)', seedFork);
  checkSamplingParams(params, index);
  const needed = prompt.length + params.maxNewTokens;
  if (needed > config.maxPositionEmbeddings) {
    throw invalid(
      index,
      'promptIds.length + samplingParams.maxNewTokens',
      `at most maxPositionEmbeddings (${config.maxPositionEmbeddings})`,
      needed,
    );
  }
}
