import {
  type CreateTrainerOptions,
  concatRoutingRecords,
  expertIdArrayFor,
  type LogprobResult,
  type Objective,
  type PolicyTrainer,
  type RoutingRecord,
  routingRecordProblems,
  routingRow,
  sliceRoutingRecord,
  type TrainingBatch,
  type TrainingSequence,
} from '@moerl/core';
import { describe, expect, it } from 'vitest';
import { createReferencePolicyTrainer } from '../reference/reference-policy-trainer.js';
import { describePolicyTrainerConformance } from '../vitest/describe-conformance.js';
import { ConformanceError } from './conformance-case.js';
import { type PolicyTrainerSubject, policyTrainerCases } from './policy-trainer-cases.js';

const capabilities = { recordRouting: true, routingReplay: true, entropy: true, checkpoints: true } as const;

// The reference trainer is correct by construction, so the whole suite must pass on it.
describePolicyTrainerConformance({
  name: 'reference trainer',
  create: async (options) => createReferencePolicyTrainer(options),
  capabilities,
});

/** Wraps the reference trainer and overrides some of its methods, to prove the cases can fail. */
function brokenSubject(
  name: string,
  override: (trainer: PolicyTrainer) => Partial<PolicyTrainer>,
): PolicyTrainerSubject {
  return {
    name,
    capabilities,
    create: async (options: CreateTrainerOptions): Promise<PolicyTrainer> => {
      const trainer = createReferencePolicyTrainer(options);
      return { ...trainer, ...override(trainer) };
    },
  };
}

const caseNamed = (fragment: string) => {
  const found = policyTrainerCases.find((entry) => entry.name.includes(fragment));
  if (found === undefined) throw new Error(`no case matches ${fragment}`);
  return found;
};

function withoutRouting(result: LogprobResult): LogprobResult {
  const { routing: _routing, ...rest } = result;
  return rest;
}

/** The routing the trainer's own router chooses for one sequence (prompt + response − 1 positions). */
async function freeRouting(trainer: PolicyTrainer, sequence: TrainingSequence): Promise<RoutingRecord> {
  const { promptIds, responseIds } = sequence;
  const result = await trainer.logprobs({ sequences: [{ promptIds, responseIds }] }, { routing: 'free' });
  return result.routing![0]!;
}

/**
 * A lenient replay: every routing record `repair` does not like is swapped for what it returns, instead of
 * being rejected. Sequences without routing pass through untouched (so ROUTING_MISSING still comes).
 */
function lenientReplay(
  trainer: PolicyTrainer,
  repair: (record: RoutingRecord, fed: number, free: RoutingRecord) => RoutingRecord,
): Partial<PolicyTrainer> {
  const repairBatch = async (batch: TrainingBatch): Promise<TrainingBatch> => ({
    sequences: await Promise.all(
      batch.sequences.map(async (sequence) => {
        if (sequence.routing === undefined) return sequence;
        const fed = sequence.promptIds.length + sequence.responseIds.length - 1;
        return { ...sequence, routing: repair(sequence.routing, fed, await freeRouting(trainer, sequence)) };
      }),
    ),
  });
  return {
    logprobs: async (batch, options) =>
      trainer.logprobs(options.routing === 'replay' ? await repairBatch(batch) : batch, options),
    trainStep: async (batch, objective, options) =>
      trainer.trainStep(options.routing === 'replay' ? await repairBatch(batch) : batch, objective, options),
  };
}

/** Replaces a non-finite loss by 0 and non-finite gradients by −1/N, so the step always happens. */
function finiteSubstitute(objective: Objective): Objective {
  return {
    name: `${objective.name} (made finite)`,
    evaluate(input) {
      const result = objective.evaluate(input);
      const fallback = -1 / Math.max(1, input.logprobs.length);
      return {
        ...result,
        loss: Number.isFinite(result.loss) ? result.loss : 0,
        gradient: result.gradient.map((value) => (Number.isFinite(value) ? value : fallback)),
      };
    },
  };
}

describe('policy trainer cases reject broken trainers', () => {
  it('catches logprobs that are off by a little', async () => {
    const subject = brokenSubject('shifted logprobs', (trainer) => ({
      logprobs: async (batch, options) => {
        const result = await trainer.logprobs(batch, options);
        return { ...result, logprobs: result.logprobs.map((value) => value - 0.01) };
      },
    }));
    await expect(caseNamed('free-mode logprobs').run(subject)).rejects.toThrow(
      /logprobs at temperature 1: max \|difference\| 1\.000e-2/,
    );
  });

  it('catches a replay that ignores the given routing and routes freely', async () => {
    const subject = brokenSubject('replay routes freely', (trainer) => ({
      logprobs: async (batch, options) => {
        if (options.routing === 'free') return trainer.logprobs(batch, options);
        // Still rejects what the real replay rejects, then computes free-mode logprobs.
        await trainer.logprobs(batch, options);
        return withoutRouting(await trainer.logprobs(batch, { ...options, routing: 'free' }));
      },
    }));
    // Replaying its own free routing cannot tell the difference; a foreign routing can.
    await expect(caseNamed('replaying its own recorded routing').run(subject)).resolves.toBeUndefined();
    await expect(caseNamed('foreign routing').run(subject)).rejects.toThrow(/replayed logprobs/);
  });

  it('catches a replay that routes freely wherever a record is mis-shaped instead of rejecting it', async () => {
    const subject = brokenSubject('replay without shape checks', (trainer) =>
      lenientReplay(trainer, (record, fed, free) => {
        const problems = routingRecordProblems(record, {
          numExperts: trainer.config.numExperts,
          moeLayers: free.moeLayers,
          topK: trainer.config.topK,
        });
        return problems.length > 0 || (record.positions !== fed && record.positions !== fed + 1)
          ? free
          : record;
      }),
    );
    await expect(caseNamed('rejects missing routing').run(subject)).rejects.toThrow(
      /one MoE layer too many: expected a MoerlError with code ROUTING_SHAPE, found no error/,
    );
  });

  it('catches a replay that accepts routing covering too few positions', async () => {
    // Checks layers, top-k and ids, but pads a short record with the router's own choices.
    const subject = brokenSubject('replay pads short routing', (trainer) =>
      lenientReplay(trainer, (record, fed, free) =>
        record.positions < fed && record.moeLayers === free.moeLayers && record.topK === free.topK
          ? concatRoutingRecords([record, sliceRoutingRecord(free, record.positions, fed)])
          : record,
      ),
    );
    await expect(caseNamed('rejects missing routing').run(subject)).rejects.toThrow(
      /one position too few: expected a MoerlError with code ROUTING_SHAPE, found no error/,
    );
  });

  it('catches a replay that drops MoE layers beyond the model instead of rejecting the record', async () => {
    // Validates ids, top-k and positions, but keeps only the first moeLayers layers of a wider record.
    const subject = brokenSubject('replay drops extra layers', (trainer) =>
      lenientReplay(trainer, (record, _fed, free) => {
        if (record.moeLayers <= free.moeLayers) return record;
        const experts = expertIdArrayFor(
          trainer.config.numExperts,
          record.positions * free.moeLayers * record.topK,
        );
        for (let position = 0; position < record.positions; position++) {
          for (let layer = 0; layer < free.moeLayers; layer++) {
            experts.set(
              routingRow(record, position, layer),
              (position * free.moeLayers + layer) * record.topK,
            );
          }
        }
        return { ...record, moeLayers: free.moeLayers, experts };
      }),
    );
    await expect(caseNamed('rejects missing routing').run(subject)).rejects.toThrow(
      /one MoE layer too many: expected a MoerlError with code ROUTING_SHAPE, found no error/,
    );
  });

  it('catches a trainStep that steps on a NaN loss with a finite substitute', async () => {
    const subject = brokenSubject('ignores NaN', (trainer) => ({
      trainStep: (batch, objective, options) =>
        trainer.trainStep(batch, finiteSubstitute(objective), options),
    }));
    await expect(caseNamed('non-finite loss').run(subject)).rejects.toThrow(
      /a NaN loss was not reported as skipped/,
    );
  });

  it('catches a trainStep that reports a NaN step as skipped but updates anyway', async () => {
    const subject = brokenSubject('claims to skip', (trainer) => ({
      trainStep: async (batch, objective, options) => {
        const result = await trainer.trainStep(batch, finiteSubstitute(objective), options);
        return { ...result, skipped: true };
      },
    }));
    await expect(caseNamed('non-finite loss').run(subject)).rejects.toThrow(/logprobs after a skipped step/);
  });

  it('catches a trainStep that checks only the loss, not the gradient', async () => {
    const subject = brokenSubject('checks only the loss', (trainer) => ({
      trainStep: (batch, objective, options) =>
        trainer.trainStep(
          batch,
          {
            name: objective.name,
            evaluate: (input) => {
              const result = objective.evaluate(input);
              // A non-finite loss still skips (the inner trainer sees it); bad gradient entries are zeroed.
              return Number.isFinite(result.loss)
                ? {
                    ...result,
                    gradient: result.gradient.map((value) => (Number.isFinite(value) ? value : 0)),
                  }
                : result;
            },
          },
          options,
        ),
    }));
    await expect(caseNamed('non-finite loss').run(subject)).rejects.toThrow(
      /a finite loss with a NaN gradient entry was not reported as skipped/,
    );
  });

  it('catches a trainStep that climbs the gradient instead of descending it', async () => {
    const subject = brokenSubject('gradient ascent', (trainer) => ({
      trainStep: (batch, objective, options) =>
        trainer.trainStep(
          batch,
          {
            name: `${objective.name} (negated)`,
            evaluate: (input) => {
              const result = objective.evaluate(input);
              return { ...result, gradient: result.gradient.map((value) => -value) };
            },
          },
          options,
        ),
    }));
    await expect(caseNamed('trainStep follows the objective gradient').run(subject)).rejects.toThrow(
      /loss did not fall/,
    );
  });

  it('catches exportWeights missing a tensor', async () => {
    const subject = brokenSubject('drops a weight', (trainer) => ({
      exportWeights: async () => {
        const weights = await trainer.exportWeights();
        weights.delete('model.norm.weight');
        return weights;
      },
    }));
    await expect(caseNamed('exportWeights').run(subject)).rejects.toThrow(
      /exportWeights lacks model\.norm\.weight/,
    );
  });

  it('catches a loadCheckpoint that accepts a missing directory', async () => {
    const subject = brokenSubject('silent loadCheckpoint', (trainer) => ({
      loadCheckpoint: async (directory) => {
        try {
          await trainer.loadCheckpoint(directory);
        } catch {
          // Swallows the error: nothing is loaded and the caller is not told.
        }
      },
    }));
    const run = caseNamed('saveCheckpoint').run(subject);
    await expect(run).rejects.toThrow(ConformanceError);
    await expect(run).rejects.toThrow(/loading a missing checkpoint/);
  });
});
