import type { StepMetrics } from '../metrics/step-metrics.js';

/** A step's metrics without how long things took: what two runs of the same config must share. */
export function withoutTimings(row: StepMetrics) {
  const {
    time: _time,
    rolloutSeconds: _rollout,
    trainSeconds: _train,
    rolloutTokensPerSecond: _rolloutSpeed,
    trainTokensPerSecond: _trainSpeed,
    rolloutWaitSeconds: _wait,
    ...rest
  } = row;
  return rest;
}
