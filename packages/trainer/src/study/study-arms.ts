type Plain = Record<string, unknown>;

/**
 * The arms of the study, each an override of the base config: free routing (the baseline), R2, R3, free
 * routing with truncated importance sampling (the correction peers use without replay), and free routing
 * with an fp32 engine (no mismatch at all: what instability looks like without it), and the frozen
 * warm-started policy sampled on the same prompts (what the curves look like without learning).
 */
export const STUDY_ARMS: Readonly<Record<string, Plain>> = {
  free: { replay: 'free' },
  R2: { replay: 'R2' },
  R3: { replay: 'R3' },
  'free-tis': { replay: 'free', algorithm: { importanceSampling: 'truncate' } },
  'fp32-engine': { replay: 'free', rollout: { precision: 'fp32', activations: 'fp32' } },
  frozen: { replay: 'R3', train: { frozen: true } },
};
