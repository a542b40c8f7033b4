import { MoerlError } from '../errors/moerl-error.js';
import type { RoutingRecord } from './routing-record.js';

export interface RoutingDisagreement {
  /** Per MoE layer: the fraction of expert choices in `a` that `b` did not make. */
  readonly perLayer: Float64Array;
  /** The same fraction over all layers. */
  readonly overall: number;
  /** The fraction of positions whose expert set differs in at least one layer. */
  readonly positionsWithAnyDifference: number;
  /** Per MoE layer: how many expert choices in `a` `b` did not make (`perLayer` × `choicesPerLayer`). */
  readonly differingChoicesPerLayer: Int32Array;
  /** How many positions differ in at least one layer (`positionsWithAnyDifference` × positions). */
  readonly differingPositions: number;
  /** Per position: 1 where the expert sets differ in at least one layer, else 0. */
  readonly positionDiffers: Uint8Array;
  /** Expert choices compared per layer: positions × topK. */
  readonly choicesPerLayer: number;
}

/**
 * How often two engines routed the same tokens to different experts. Choices are compared as sets per
 * position and layer: the order of the k ids does not matter (engines sort top-k differently), only
 * which experts were chosen. A record with zero positions gives zeros.
 */
export function routingDisagreement(a: RoutingRecord, b: RoutingRecord): RoutingDisagreement {
  if (a.positions !== b.positions || a.moeLayers !== b.moeLayers || a.topK !== b.topK) {
    throw new MoerlError(
      'ROUTING_SHAPE',
      `Cannot compare routing of shape [${a.positions}][${a.moeLayers}][${a.topK}] with [${b.positions}][${b.moeLayers}][${b.topK}]`,
      { details: { a: [a.positions, a.moeLayers, a.topK], b: [b.positions, b.moeLayers, b.topK] } },
    );
  }
  const { positions, moeLayers, topK } = a;
  const differing = new Int32Array(moeLayers);
  const positionDiffers = new Uint8Array(positions);
  let positionsDiffering = 0;
  for (let position = 0; position < positions; position++) {
    let anyLayer = false;
    for (let layer = 0; layer < moeLayers; layer++) {
      const start = (position * moeLayers + layer) * topK;
      for (let k = 0; k < topK; k++) {
        const id = a.experts[start + k];
        let found = false;
        for (let j = 0; j < topK && !found; j++) found = b.experts[start + j] === id;
        if (!found) {
          differing[layer]! += 1;
          anyLayer = true;
        }
      }
    }
    if (anyLayer) {
      positionsDiffering++;
      positionDiffers[position] = 1;
    }
  }
  const choicesPerLayer = positions * topK;
  let total = 0;
  const perLayer = new Float64Array(moeLayers);
  for (let layer = 0; layer < moeLayers; layer++) {
    total += differing[layer]!;
    perLayer[layer] = choicesPerLayer === 0 ? 0 : differing[layer]! / choicesPerLayer;
  }
  const allChoices = choicesPerLayer * moeLayers;
  return {
    perLayer,
    overall: allChoices === 0 ? 0 : total / allChoices,
    positionsWithAnyDifference: positions === 0 ? 0 : positionsDiffering / positions,
    differingChoicesPerLayer: differing,
    differingPositions: positionsDiffering,
    positionDiffers,
    choicesPerLayer,
  };
}
