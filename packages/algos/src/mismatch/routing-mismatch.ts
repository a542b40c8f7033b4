import { MoerlError, type RoutingRecord, routingDisagreement, sliceRoutingRecord } from '@moerl/core';

/** The routing two engines chose for the same sequence. */
export interface RoutingPair {
  /** The reference side, usually the inference engine. */
  readonly engine: RoutingRecord;
  /** The other side, usually the trainer in free routing. */
  readonly trainer: RoutingRecord;
  /** First position compared, e.g. promptLength − 1 to measure response tokens only. Default 0. */
  readonly startPosition?: number;
}

export interface RoutingMismatch {
  /** Per MoE layer: the fraction of the engine's expert choices the trainer did not make. */
  readonly perLayer: Float64Array;
  /** The same over all layers. */
  readonly overall: number;
  /** Fraction of positions whose expert set differs in at least one layer. */
  readonly tokensWithAnyDifference: number;
  /** Positions compared over the batch. */
  readonly positions: number;
}

/**
 * Routing disagreement over a batch, built on core's `routingDisagreement` per sequence and pooled by
 * counts (a long sequence weighs more than a short one, unlike a mean of per-sequence fractions).
 */
export function routingMismatch(pairs: readonly RoutingPair[]): RoutingMismatch {
  const first = pairs[0];
  if (first === undefined) {
    throw new MoerlError('INVALID_ARGUMENT', 'pairs must hold at least one engine/trainer pair, found none', {
      details: { field: 'pairs' },
    });
  }
  const { moeLayers, topK } = first.engine;
  const differing = new Float64Array(moeLayers);
  let positions = 0;
  let positionsDiffering = 0;
  for (const [index, pair] of pairs.entries()) {
    if (pair.engine.moeLayers !== moeLayers || pair.engine.topK !== topK) {
      throw new MoerlError(
        'ROUTING_SHAPE',
        `pairs[${index}].engine has ${pair.engine.moeLayers} layers × top-${pair.engine.topK}; pairs[0] has ${moeLayers} × top-${topK}`,
        { details: { field: `pairs[${index}].engine`, index } },
      );
    }
    const start = pair.startPosition ?? 0;
    const engine = start === 0 ? pair.engine : sliceRoutingRecord(pair.engine, start);
    const trainer = start === 0 ? pair.trainer : sliceRoutingRecord(pair.trainer, start);
    // Pooled by counts, not fractions, so that sequences weigh by their size.
    const result = routingDisagreement(engine, trainer);
    for (let layer = 0; layer < moeLayers; layer++)
      differing[layer]! += result.differingChoicesPerLayer[layer]!;
    positionsDiffering += result.differingPositions;
    positions += engine.positions;
  }
  const perLayer = new Float64Array(moeLayers);
  let total = 0;
  for (let layer = 0; layer < moeLayers; layer++) {
    total += differing[layer]!;
    perLayer[layer] = positions === 0 ? 0 : differing[layer]! / (positions * topK);
  }
  return {
    perLayer,
    overall: positions === 0 || moeLayers === 0 ? 0 : total / (positions * topK * moeLayers),
    tokensWithAnyDifference: positions === 0 ? 0 : positionsDiffering / positions,
    positions,
  };
}

/** A routing mismatch as a flat metrics record: overall, any-layer fraction, and one key per layer. */
export function routingMismatchMetrics(mismatch: RoutingMismatch): Record<string, number> {
  const metrics: Record<string, number> = {
    routingDisagreement: mismatch.overall,
    routingTokensWithAnyDifference: mismatch.tokensWithAnyDifference,
  };
  mismatch.perLayer.forEach((value, layer) => {
    metrics[`routingDisagreementLayer${layer}`] = value;
  });
  return metrics;
}
