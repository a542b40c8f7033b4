import type { BackendKind, BackendKinds } from '../contracts/backend.js';
import { MoerlError } from '../errors/moerl-error.js';

export interface BackendRegistration<K extends BackendKind = BackendKind> {
  readonly name: string;
  readonly kind: K;
  /**
   * Higher wins when nothing is preferred. A negative priority marks an experimental backend: registered,
   * never picked automatically, only by name.
   */
  readonly priority: number;
  /** Called at most once per registration, on first use; may throw when an optional dependency is absent. */
  readonly create: () => BackendKinds[K] | Promise<BackendKinds[K]>;
}

export interface SkippedBackend {
  readonly name: string;
  readonly error: unknown;
}

export interface ResolvedBackend<K extends BackendKind> {
  readonly backend: BackendKinds[K];
  readonly name: string;
  /** Backends tried before this one and why each failed, best first. */
  readonly skipped: readonly SkippedBackend[];
  /** One line for the user, e.g. "trainer backend: tfjs-wasm (skipped tfjs-node: Cannot find package …)". */
  readonly summary: string;
}

export interface ResolveOptions {
  /** Names to try, in order, instead of every registered backend by priority. No fallback beyond them. */
  readonly preferred?: string | readonly string[];
}

export interface BackendInfo {
  readonly name: string;
  readonly kind: BackendKind;
  readonly priority: number;
  readonly state: 'untried' | 'initialising' | 'ready' | 'failed';
  readonly error?: unknown;
}

export interface BackendRegistry {
  register<K extends BackendKind>(registration: BackendRegistration<K>): void;
  unregister(kind: BackendKind, name: string): boolean;
  list(kind?: BackendKind): BackendInfo[];
  resolve<K extends BackendKind>(kind: K, options?: ResolveOptions): Promise<ResolvedBackend<K>>;
}

interface Entry {
  readonly registration: BackendRegistration;
  readonly order: number;
  state: BackendInfo['state'];
  promise?: Promise<BackendKinds[BackendKind]>;
  value?: BackendKinds[BackendKind];
  error?: unknown;
}

const KINDS: readonly BackendKind[] = ['trainer', 'rollout'];

function errorText(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0]! : String(error);
}

function checkRegistration(registration: BackendRegistration): void {
  const problems: string[] = [];
  if (typeof registration !== 'object' || registration === null) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `registerBackend expects an object, found ${String(registration)}`,
    );
  }
  if (typeof registration.name !== 'string' || registration.name.length === 0)
    problems.push('name must be a non-empty string');
  if (!KINDS.includes(registration.kind))
    problems.push(`kind must be one of ${KINDS.join(', ')}, found ${String(registration.kind)}`);
  if (typeof registration.priority !== 'number' || !Number.isFinite(registration.priority)) {
    problems.push(`priority must be a finite number, found ${String(registration.priority)}`);
  }
  if (typeof registration.create !== 'function') problems.push('create must be a function');
  if (problems.length > 0) {
    throw new MoerlError('INVALID_ARGUMENT', `Invalid backend registration: ${problems.join('; ')}`, {
      details: { problems },
    });
  }
}

/** A registry of its own; tests use one each, applications use the global one (`registerBackend`). */
export function createBackendRegistry(): BackendRegistry {
  const entries = new Map<string, Entry>();
  let order = 0;
  const key = (kind: BackendKind, name: string) => `${kind}:${name}`;

  const initialise = (entry: Entry): Promise<BackendKinds[BackendKind]> => {
    if (entry.promise === undefined) {
      entry.state = 'initialising';
      // Concurrent resolvers share one promise, so each factory runs at most once.
      entry.promise = (async () => entry.registration.create())().then(
        (value) => {
          entry.state = 'ready';
          entry.value = value;
          return value;
        },
        (error: unknown) => {
          entry.state = 'failed';
          entry.error = error;
          throw error;
        },
      );
    }
    return entry.promise;
  };

  const namesOf = (kind: BackendKind) =>
    [...entries.values()]
      .filter((entry) => entry.registration.kind === kind)
      .map((entry) => entry.registration.name);

  return {
    register(registration) {
      checkRegistration(registration as BackendRegistration);
      const id = key(registration.kind, registration.name);
      const existing = entries.get(id);
      if (existing !== undefined) {
        const previous = existing.registration;
        if (previous === registration || previous.create === registration.create) return;
        if (registration.priority < previous.priority) return;
        if (registration.priority === previous.priority) {
          throw new MoerlError(
            'BACKEND_CONFLICT',
            `A different ${registration.kind} backend named "${registration.name}" is already registered at priority ${previous.priority}; register with a higher priority to replace it`,
            { details: { name: registration.name, kind: registration.kind, priority: previous.priority } },
          );
        }
      }
      entries.set(id, {
        registration: registration as BackendRegistration,
        order: order++,
        state: 'untried',
      });
    },

    unregister(kind, name) {
      return entries.delete(key(kind, name));
    },

    list(kind) {
      return [...entries.values()]
        .filter((entry) => kind === undefined || entry.registration.kind === kind)
        .sort((a, b) => b.registration.priority - a.registration.priority || a.order - b.order)
        .map((entry) => ({
          name: entry.registration.name,
          kind: entry.registration.kind,
          priority: entry.registration.priority,
          state: entry.state,
          ...(entry.error === undefined ? {} : { error: entry.error }),
        }));
    },

    async resolve<K extends BackendKind>(kind: K, options: ResolveOptions = {}): Promise<ResolvedBackend<K>> {
      let candidates: Entry[];
      if (options.preferred !== undefined) {
        const names = typeof options.preferred === 'string' ? [options.preferred] : options.preferred;
        candidates = names.map((name) => {
          const entry = entries.get(key(kind, name));
          if (entry === undefined) {
            const known = namesOf(kind);
            throw new MoerlError(
              'BACKEND_UNAVAILABLE',
              `No ${kind} backend named "${name}" is registered; registered: ${known.length > 0 ? known.join(', ') : 'none'}`,
              { details: { kind, requested: name, registered: known } },
            );
          }
          return entry;
        });
      } else {
        candidates = [...entries.values()]
          .filter((entry) => entry.registration.kind === kind && entry.registration.priority >= 0)
          .sort((a, b) => b.registration.priority - a.registration.priority || a.order - b.order);
      }

      const skipped: SkippedBackend[] = [];
      for (const entry of candidates) {
        try {
          const backend = (await initialise(entry)) as BackendKinds[K];
          const name = entry.registration.name;
          const why = skipped.map((skip) => `${skip.name}: ${errorText(skip.error)}`).join('; ');
          return {
            backend,
            name,
            skipped,
            summary: `${kind} backend: ${name}${why ? ` (skipped ${why})` : ''}`,
          };
        } catch (error) {
          skipped.push({ name: entry.registration.name, error });
        }
      }

      const known = namesOf(kind);
      const reasons = skipped.map((skip) => `  [${skip.name}] ${errorText(skip.error)}`).join('\n');
      throw new MoerlError(
        'BACKEND_UNAVAILABLE',
        known.length === 0
          ? `No ${kind} backend is registered. Install one (e.g. @moerl/backend-tfjs for training, @moerl/backend-onnx for rollout) and call its register function.`
          : `No ${kind} backend could be initialised. Registered: ${known.join(', ')}.${reasons ? `\n${reasons}` : ' None may be picked automatically (negative priority); name one.'}`,
        { details: { kind, registered: known, skipped }, cause: skipped.map((skip) => skip.error) },
      );
    },
  };
}

// Hung off globalThis under a Symbol.for key so that duplicated installs of @moerl/core share one registry.
const GLOBAL_KEY = Symbol.for('moerl.registry.v1');

/** The process-wide registry. */
export function globalBackendRegistry(): BackendRegistry {
  const holder = globalThis as { [GLOBAL_KEY]?: BackendRegistry };
  holder[GLOBAL_KEY] ??= createBackendRegistry();
  return holder[GLOBAL_KEY];
}

export function registerBackend<K extends BackendKind>(registration: BackendRegistration<K>): void {
  globalBackendRegistry().register(registration);
}

export function resolveBackend<K extends BackendKind>(
  kind: K,
  options?: ResolveOptions,
): Promise<ResolvedBackend<K>> {
  return globalBackendRegistry().resolve(kind, options);
}

export function listBackends(kind?: BackendKind): BackendInfo[] {
  return globalBackendRegistry().list(kind);
}
