import type { CreateEngineOptions, GenerateRequest, RolloutEngine, Trajectory } from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { createReferenceRolloutEngine } from '../reference/reference-rollout-engine.js';
import { describeRolloutEngineConformance } from '../vitest/describe-conformance.js';
import { ConformanceError, partitionCases } from './conformance-case.js';
import { type RolloutEngineSubject, rolloutEngineCases } from './rollout-engine-cases.js';

const capabilities = {
  recordRouting: true,
  prefixCache: false,
  batchedGeneration: false,
  precisions: ['fp32', 'bf16'],
  seedFork: true,
} as const;

// The reference engine is correct by construction, so the whole suite must pass on it.
describeRolloutEngineConformance({
  name: 'reference engine',
  create: async (options) => createReferenceRolloutEngine(options),
  capabilities,
});

/** Wraps the reference engine and corrupts what it returns, to prove the cases can fail. */
function brokenSubject(corrupt: (trajectory: Trajectory) => Trajectory, name: string): RolloutEngineSubject {
  return {
    name,
    capabilities,
    create: async (options: CreateEngineOptions): Promise<RolloutEngine> => {
      const engine = createReferenceRolloutEngine(options);
      return {
        ...engine,
        generate: async (requests, params) => (await engine.generate(requests, params)).map(corrupt),
      };
    },
  };
}

/** Wraps the reference engine and rewrites the requests it is given, to prove the request-side cases can fail. */
function requestRewritingSubject(
  rewrite: (request: GenerateRequest) => GenerateRequest,
  name: string,
): RolloutEngineSubject {
  return {
    name,
    capabilities,
    create: async (options: CreateEngineOptions): Promise<RolloutEngine> => {
      const engine = createReferenceRolloutEngine(options);
      return { ...engine, generate: (requests, params) => engine.generate(requests.map(rewrite), params) };
    },
  };
}

const caseNamed = (fragment: string) => {
  const found = rolloutEngineCases.find((entry) => entry.name.includes(fragment));
  if (found === undefined) throw new Error(`no case matches ${fragment}`);
  return found;
};

describe('rollout engine cases reject broken engines', () => {
  it('catches logprobs that are off by a little', async () => {
    const subject = brokenSubject(
      (trajectory) => ({
        ...trajectory,
        engineLogprobs: trajectory.engineLogprobs.map((value) => value - 0.01),
      }),
      'shifted logprobs',
    );
    await expect(caseNamed('fp32 logprobs').run(subject)).rejects.toThrow(ConformanceError);
  });

  it('catches routing that misses the last fed position', async () => {
    const subject = brokenSubject((trajectory) => {
      const routing = trajectory.routing!;
      const row = routing.moeLayers * routing.topK;
      return {
        ...trajectory,
        routing: { ...routing, positions: routing.positions - 1, experts: routing.experts.slice(0, -row) },
      };
    }, 'short routing');
    await expect(caseNamed('records the routing').run(subject)).rejects.toThrow(/positions must be/);
  });

  it('catches routing that differs from the router', async () => {
    const subject = brokenSubject((trajectory) => {
      const routing = trajectory.routing!;
      // Swap each chosen expert for the next id not already chosen, so rows stay valid but differ.
      const experts = routing.experts.map((id) => (id + 2) % 4);
      return { ...trajectory, routing: { ...routing, experts } };
    }, 'wrong routing');
    await expect(caseNamed('records the routing').run(subject)).rejects.toThrow(/expert choices differ/);
  });

  it('catches an engine that claims seedFork but samples from the position in the call', async () => {
    const subject = requestRewritingSubject(
      ({ seedFork: _ignored, ...request }) => request,
      'ignores seedFork',
    );
    await expect(caseNamed('with seedFork k samples').run(subject)).rejects.toThrow(/seedFork 0: tokens/);
  });

  it('catches an engine that accepts an invalid seedFork', async () => {
    const subject = requestRewritingSubject(({ seedFork, ...request }) => {
      // Clamps instead of rejecting: a silent fix-up the contract forbids.
      const clamped = seedFork === undefined ? undefined : Math.max(0, Math.floor(seedFork) || 0);
      return clamped === undefined ? request : { ...request, seedFork: clamped };
    }, 'clamps seedFork');
    await expect(caseNamed('rejects a seedFork').run(subject)).rejects.toThrow(/expected a MoerlError/);
  });

  it('skips the seedFork cases for an engine that does not claim the capability', () => {
    const { seedFork: _claimed, ...without } = capabilities;
    const { skip } = partitionCases(rolloutEngineCases, without);
    expect(
      skip.filter((entry) => entry.missing.includes('seedFork')).map((entry) => entry.case.name),
    ).toEqual([caseNamed('with seedFork k samples').name, caseNamed('rejects a seedFork').name]);
  });

  it('catches a stale weight version', async () => {
    const subject = brokenSubject((trajectory) => ({ ...trajectory, weightVersion: 0 }), 'stale version');
    await expect(caseNamed('updateWeights').run(subject)).rejects.toThrow(/weightVersion 0, expected 5/);
  });
});
