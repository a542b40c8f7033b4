import { MoerlError, type Objective } from '@moerl/core';
import { createPolicyObjective, type ObjectiveOptions } from './create-policy-objective.js';

/** IcePop's default band [α, β] on π_old / π_engine (Ling team: α = 0.5, β = 5). */
export const ICEPOP_BAND: readonly [number, number] = [0.5, 5];

/** Builds an objective for one batch. */
export type ObjectiveFactory = (options: ObjectiveOptions) => Objective;

export interface RegisterObjectiveOptions {
  /** Replace an objective already registered under the name. Default false (a duplicate throws). */
  readonly replace?: boolean;
}

export interface ObjectiveRegistry {
  register(name: string, factory: ObjectiveFactory, options?: RegisterObjectiveOptions): void;
  create(name: string, options: ObjectiveOptions): Objective;
  has(name: string): boolean;
  list(): string[];
}

/**
 * The built-in objectives by name. `grpo` is token-level PPO clip; `dapo` adds clip-higher (ε_high 0.28);
 * `dr-grpo` aggregates with seq-mean-token-sum-norm; `cispo` and `sapo` are their losses; `icepop` is PPO
 * clip with IcePop's band on the train–inference ratio: π_old / π_engine outside [0.5, 5] masks the token,
 * inside it weights the token (needs `batch.engineLogprobs`; `rolloutCorrection` overrides the band).
 * Options given to `create` override these defaults.
 */
export const BUILT_IN_OBJECTIVES: Readonly<Record<string, ObjectiveFactory>> = {
  'ppo-clip': (options) => createPolicyObjective('ppo-clip', options),
  grpo: (options) => createPolicyObjective('ppo-clip', options, 'grpo'),
  dapo: (options) => createPolicyObjective('ppo-clip', { clipRatioHigh: 0.28, ...options }, 'dapo'),
  'dr-grpo': (options) =>
    createPolicyObjective('ppo-clip', { lossAggMode: 'seq-mean-token-sum-norm', ...options }, 'dr-grpo'),
  gspo: (options) => createPolicyObjective('gspo', options),
  'gspo-token': (options) => createPolicyObjective('gspo-token', options),
  cispo: (options) => createPolicyObjective('cispo', options),
  sapo: (options) => createPolicyObjective('sapo', options),
  icepop: (options) =>
    createPolicyObjective(
      'ppo-clip',
      {
        rolloutCorrection: {
          is: { level: 'token', threshold: ICEPOP_BAND[1], thresholdLower: ICEPOP_BAND[0] },
        },
        ...options,
      },
      'icepop',
    ),
};

/** A registry of its own, holding the built-ins unless `builtIns: false`. */
export function createObjectiveRegistry(options: { readonly builtIns?: boolean } = {}): ObjectiveRegistry {
  const factories = new Map<string, ObjectiveFactory>(
    options.builtIns === false ? [] : Object.entries(BUILT_IN_OBJECTIVES),
  );
  return {
    register(name, factory, registerOptions = {}) {
      if (typeof name !== 'string' || name.length === 0) {
        throw new MoerlError(
          'INVALID_ARGUMENT',
          `Objective name must be a non-empty string, found ${String(name)}`,
          {
            details: { field: 'name' },
          },
        );
      }
      if (typeof factory !== 'function') {
        throw new MoerlError(
          'INVALID_ARGUMENT',
          `Objective '${name}' needs a factory function, found ${typeof factory}`,
          {
            details: { field: 'factory' },
          },
        );
      }
      if (factories.has(name) && registerOptions.replace !== true) {
        throw new MoerlError(
          'INVALID_ARGUMENT',
          `Objective name '${name}' is already registered; pass { replace: true } to replace it`,
          { details: { field: 'name', found: name } },
        );
      }
      factories.set(name, factory);
    },
    create(name, objectiveOptions) {
      const factory = factories.get(name);
      if (factory === undefined) {
        throw new MoerlError(
          'INVALID_ARGUMENT',
          `Objective name '${name}' is not registered; registered: ${[...factories.keys()].join(', ')}`,
          { details: { field: 'name', found: name, registered: [...factories.keys()] } },
        );
      }
      return factory(objectiveOptions);
    },
    has: (name) => factories.has(name),
    list: () => [...factories.keys()].sort(),
  };
}

// The process-wide registry, made on first use so that importing the package does nothing. It hangs off
// globalThis under a Symbol.for key, so that a plugin importing its own copy of @moerl/algos registers
// where the trainer's copy reads; each copy adds the built-ins the first one lacked (never replacing).
const GLOBAL_KEY = Symbol.for('moerl.objectives.v1');
let builtInsAdded = false;

function registry(): ObjectiveRegistry {
  const holder = globalThis as { [GLOBAL_KEY]?: ObjectiveRegistry };
  if (holder[GLOBAL_KEY] === undefined) holder[GLOBAL_KEY] = createObjectiveRegistry();
  else if (!builtInsAdded) {
    for (const [name, factory] of Object.entries(BUILT_IN_OBJECTIVES))
      if (!holder[GLOBAL_KEY].has(name)) holder[GLOBAL_KEY].register(name, factory);
  }
  builtInsAdded = true;
  return holder[GLOBAL_KEY];
}

/** Adds an objective to the package-wide registry under `name`. */
export function registerObjective(
  name: string,
  factory: ObjectiveFactory,
  options?: RegisterObjectiveOptions,
): void {
  registry().register(name, factory, options);
}

/** Builds the objective registered under `name` for the batch in `options`. */
export function createObjective(name: string, options: ObjectiveOptions): Objective {
  return registry().create(name, options);
}

/** The names registered in the package-wide registry, sorted. */
export function listObjectives(): string[] {
  return registry().list();
}
