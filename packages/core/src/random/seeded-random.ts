import { MoerlError } from '../errors/moerl-error.js';

/**
 * A seeded pseudo-random generator (xoshiro128**, seeded through splitmix32). Every random choice in moerl
 * takes one, so a run is reproducible from its seed. Not for cryptography.
 */
export interface SeededRandom {
  /** A uniform unsigned 32-bit integer. */
  nextUint32(): number;
  /** A uniform float in [0, 1) with 53 random bits. */
  nextFloat(): number;
  /** A uniform integer in [0, bound), without modulo bias. */
  nextInt(bound: number): number;
  /** A standard normal sample (Box–Muller). */
  nextNormal(): number;
  /** An independent generator derived from this one's seed and a label; does not advance this one. */
  fork(label: string | number): SeededRandom;
  readonly seed: number;
}

function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

// FNV-1a, so labels of any length map to a 32-bit salt.
function hashLabel(label: string | number): number {
  const text = String(label);
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

export function createRandom(seed: number): SeededRandom {
  if (!Number.isSafeInteger(seed)) {
    throw new MoerlError('INVALID_ARGUMENT', `A random seed must be a safe integer, found ${seed}`, {
      details: { found: seed },
    });
  }
  // Fold the high bits in so seeds above 2^32 still differ.
  const mix = splitmix32((seed >>> 0) ^ Math.floor(seed / 2 ** 32));
  let s0 = mix();
  let s1 = mix();
  let s2 = mix();
  let s3 = mix();
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1; // the all-zero state is a fixed point

  let spareNormal: number | undefined;

  const nextUint32 = (): number => {
    const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    s0 >>>= 0;
    s1 >>>= 0;
    s2 >>>= 0;
    return result;
  };

  const nextFloat = (): number =>
    ((nextUint32() >>> 5) * 67_108_864 + (nextUint32() >>> 6)) / 9_007_199_254_740_992;

  return {
    seed,
    nextUint32,
    nextFloat,
    nextInt(bound: number): number {
      if (!Number.isInteger(bound) || bound < 1 || bound > 2 ** 32) {
        throw new MoerlError(
          'INVALID_ARGUMENT',
          `nextInt bound must be an integer in [1, 2^32], found ${bound}`,
        );
      }
      // Rejection sampling: draw again when the value falls in the incomplete last bucket.
      const limit = 2 ** 32 - (2 ** 32 % bound);
      let value = nextUint32();
      while (value >= limit) value = nextUint32();
      return value % bound;
    },
    nextNormal(): number {
      if (spareNormal !== undefined) {
        const value = spareNormal;
        spareNormal = undefined;
        return value;
      }
      let u = nextFloat();
      while (u === 0) u = nextFloat();
      const v = nextFloat();
      const radius = Math.sqrt(-2 * Math.log(u));
      spareNormal = radius * Math.sin(2 * Math.PI * v);
      return radius * Math.cos(2 * Math.PI * v);
    },
    fork(label: string | number): SeededRandom {
      return createRandom(((seed >>> 0) ^ hashLabel(label)) + Math.floor(seed / 2 ** 32) * 2 ** 32);
    },
  };
}
