import { describe, it } from 'vitest';
import { type ConformanceCase, partitionCases } from '../conformance/conformance-case.js';
import { type PolicyTrainerSubject, policyTrainerCases } from '../conformance/policy-trainer-cases.js';
import { type ReplayParitySubject, replayParityCases } from '../conformance/replay-parity-cases.js';
import { type RolloutEngineSubject, rolloutEngineCases } from '../conformance/rollout-engine-cases.js';

function describeCases<Subject extends { name: string; capabilities: object }, Capability extends string>(
  title: string,
  subject: Subject,
  cases: readonly ConformanceCase<Subject, Capability>[],
): void {
  describe(`${title}: ${subject.name}`, () => {
    const { run, skip } = partitionCases(cases, subject.capabilities as Partial<Record<Capability, unknown>>);
    for (const entry of run) it(entry.name, () => entry.run(subject));
    // Skipped with the capability named, so a report shows exactly what the backend does not claim.
    for (const { case: entry, missing } of skip)
      it.skip(`${entry.name} [needs capability: ${missing.join(', ')}]`, () => {});
  });
}

/** Registers the PolicyTrainer conformance suite for a backend. */
export function describePolicyTrainerConformance(subject: PolicyTrainerSubject): void {
  describeCases('PolicyTrainer conformance', subject, policyTrainerCases);
}

/** Registers the RolloutEngine conformance suite for a backend. */
export function describeRolloutEngineConformance(subject: RolloutEngineSubject): void {
  describeCases('RolloutEngine conformance', subject, rolloutEngineCases);
}

/** Registers the checks that an engine and a trainer agree when the trainer replays the engine's routing. */
export function describeReplayParity(subject: ReplayParitySubject): void {
  describeCases('Replay parity', subject, replayParityCases);
}
