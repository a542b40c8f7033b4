/**
 * Step time of the RL loop, synchronous against one step off-policy (`rollout.async: 1`, the engine sampling
 * step N + 1 while the trainer trains step N), on the demo config and on one where sampling weighs more
 * (16 samples a prompt, one optimizer step per batch). Prints, per setting, wall seconds per step (median
 * of steps 2…n), how long a step waited for its rollouts, CPU use over the run (all threads, per core),
 * and the sync / async ratio, measured in one run with the two modes interleaved. Asserts nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveRunConfig } from '../src/config/resolve-run-config.js';
import type { RunConfigInput } from '../src/config/run-config-schema.js';
import { trainRun } from '../src/run/train-run.js';

const quick = process.argv.includes('--quick');
const steps = quick ? 6 : 12;
const rounds = quick ? 1 : 2;
const settings: Record<string, RunConfigInput> = {
  demo: {},
  'sampling-heavy': { rollout: { groupSize: 16 }, train: { miniBatches: 1 } },
};

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function measure(overrides: RunConfigInput, async: number) {
  const directory = await mkdtemp(join(tmpdir(), 'moerl-async-bench-'));
  const config = await resolveRunConfig({
    preset: 'demo',
    overrides: [
      `train.steps=${steps}`,
      'warmStart.steps=20',
      'eval.every=0',
      'eval.size=16',
      'replay=R3',
      `rollout.async=${async}`,
    ],
    config: overrides,
  });
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  try {
    const { metrics } = await trainRun({ config, directory });
    const wall = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const times = metrics.map((row) => Date.parse(row.time ?? ''));
    const perStep = times.slice(1).map((time, index) => (time - times[index]!) / 1000);
    return {
      step: median(perStep.slice(0, -1)),
      waited: median(metrics.slice(1).map((row) => row.rolloutWaitSeconds ?? Number.NaN)),
      cpu: (cpu.user + cpu.system) / 1e6 / wall / availableParallelism(),
    };
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

console.log(
  `moerl RL step time, synchronous vs rollout.async 1 (${steps} steps, R3, ${availableParallelism()} cores)`,
);
console.log(
  'setting        | sync s/step | async s/step | waited sync/async | CPU sync/async | sync / async',
);
for (const [name, overrides] of Object.entries(settings)) {
  const results: Record<number, { step: number; waited: number; cpu: number }[]> = { 0: [], 1: [] };
  for (let round = 0; round < rounds; round++) {
    for (const async of [0, 1]) results[async]!.push(await measure(overrides, async));
  }
  const best = (async: number) => results[async]!.reduce((a, b) => (a.step <= b.step ? a : b));
  const sync = best(0);
  const pipelined = best(1);
  console.log(
    `${name.padEnd(14)} | ${sync.step.toFixed(3).padStart(11)} | ${pipelined.step.toFixed(3).padStart(12)} | ${sync.waited.toFixed(3)} / ${pipelined.waited.toFixed(3)}`.padEnd(
      62,
    ) +
      ` | ${(100 * sync.cpu).toFixed(0)}% / ${(100 * pipelined.cpu).toFixed(0)}%`.padEnd(17) +
      ` | ${(sync.step / pipelined.step).toFixed(2)}×`,
  );
}
