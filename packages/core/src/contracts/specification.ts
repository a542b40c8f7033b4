import { MoerlError } from '../errors/moerl-error.js';
import type { PolicyTrainerCapabilities, RolloutEngineCapabilities } from './capabilities.js';

export const SPECIFICATION_VERSION = 'v1' as const;

interface Versioned<C> {
  readonly specificationVersion: string;
  readonly backendName: string;
  readonly capabilities: C;
}

/**
 * Checks up front that an engine or trainer speaks this version of the contracts and has every capability
 * the caller needs. A missing capability is an `UNSUPPORTED` error, never a silent downgrade.
 */
export function assertSupports<C extends RolloutEngineCapabilities | PolicyTrainerCapabilities>(
  subject: Versioned<C>,
  required: ReadonlyArray<{ [K in keyof C]: C[K] extends boolean ? K : never }[keyof C]>,
): void {
  if (subject.specificationVersion !== SPECIFICATION_VERSION) {
    throw new MoerlError(
      'UNSUPPORTED',
      `${subject.backendName} implements specification ${subject.specificationVersion}; this version of @moerl/core speaks ${SPECIFICATION_VERSION}`,
      { details: { expected: SPECIFICATION_VERSION, found: subject.specificationVersion } },
    );
  }
  const missing = required.filter((capability) => subject.capabilities[capability] !== true);
  if (missing.length > 0) {
    throw new MoerlError(
      'UNSUPPORTED',
      `${subject.backendName} lacks required capabilit${missing.length === 1 ? 'y' : 'ies'}: ${missing.map(String).join(', ')}`,
      { details: { backend: subject.backendName, missing: missing.map(String) } },
    );
  }
}
