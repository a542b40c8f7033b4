/**
 * Step time of the RL loop, synchronous against one step off-policy (`rollout.async: 1`, the engine sampling
 * step N + 1 while the trainer trains step N), on the demo config, on one where sampling weighs more (16
 * samples a prompt, one optimizer step per batch), on both with the engine in another process (`moerl
 * serve` on loopback, `rollout.servers`) or in a worker thread (`rollout.worker`): the settings where the two
 * can use both cores, and on a small batch and a multi-turn game, where rollout and training take similar time. Prints, per setting,
 * wall seconds per step (median of steps 2…n), rollout and train seconds per step, how long a step waited
 * for its rollouts, CPU use over the run (trainer and server processes, per core), the sync / async
 * ratio, and, of the async run, the median over steps of a step's time over the longer of its rollout and
 * training, and its step time over the longer phase of the synchronous run (where each phase ran alone),
 * measured in one run with the two modes interleaved. Asserts nothing.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveRunConfig } from '../src/config/resolve-run-config.js';
import type { RunConfigInput } from '../src/config/run-config-schema.js';
import { trainRun } from '../src/run/train-run.js';

const quick = process.argv.includes('--quick');
const steps = quick ? 6 : 12;
const rounds = quick ? 1 : 2;
const SAMPLING_HEAVY: RunConfigInput = { rollout: { groupSize: 16 }, train: { miniBatches: 1 } };
/** `server`: the engine in another process, served with these extra `moerl serve` flags (its model must match). */
const settings: Record<string, { config: RunConfigInput; server?: readonly string[] }> = {
  demo: { config: {} },
  'sampling-heavy': { config: SAMPLING_HEAVY },
  'demo, server': { config: {}, server: [] },
  'heavy, server': { config: SAMPLING_HEAVY, server: [] },
  // 4 prompts a step: training shrinks with the batch, sampling (a decode step at a time) much less, so the
  // two take similar time.
  'small, server': { config: { rollout: { promptsPerStep: 4 } }, server: [] },
  // A multi-turn game: up to 7 sequential engine calls a step, so sampling weighs as much as training.
  'guess, server': {
    config: { task: { name: 'guess-number' } },
    server: ['--set', 'task.name=guess-number'],
  },
  // The same with the server on one onnxruntime thread, leaving the other core to the trainer.
  'guess, server 1t': {
    config: { task: { name: 'guess-number' } },
    server: ['--set', 'task.name=guess-number', '--threads', '1'],
  },
  // The HTTP client in a worker thread too (`rollout.worker` with servers): JSON off the trainer's thread.
  'demo, server, worker': { config: { rollout: { worker: true } }, server: [] },
  'small, server, worker': { config: { rollout: { promptsPerStep: 4, worker: true } }, server: [] },
  // The engine in a worker thread of the trainer's process (`rollout.worker`): no HTTP, no weights on disk.
  'demo, worker': { config: { rollout: { worker: true } } },
  'heavy, worker': { config: { ...SAMPLING_HEAVY, rollout: { ...SAMPLING_HEAVY.rollout, worker: true } } },
  'small, worker': { config: { rollout: { promptsPerStep: 4, worker: true } } },
  'guess, worker': { config: { task: { name: 'guess-number' }, rollout: { worker: true } } },
  // The same with the worker's engine on one onnxruntime thread, leaving the other core to the trainer.
  'demo, worker 1t': { config: { rollout: { worker: true, threads: 1 } } },
  'small, worker 1t': { config: { rollout: { promptsPerStep: 4, worker: true, threads: 1 } } },
  'guess, worker 1t': {
    config: { task: { name: 'guess-number' }, rollout: { worker: true, threads: 1 } },
  },
};

/** CPU seconds a process has used so far (Linux /proc; NaN elsewhere). */
function processCpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime, fields 14 and 15 of stat (11 and 12 after the command name), in clock ticks.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** `moerl serve` of the demo's initial model in a child process; resolves with its URL once it listens. */
async function startServer(flags: readonly string[]): Promise<{ url: string; child: ChildProcess }> {
  const bin = fileURLToPath(new URL('../src/cli/bin.ts', import.meta.url));
  const child = spawn(
    process.execPath,
    [...process.execArgv, bin, 'serve', '-p', 'demo', ...flags, '--port', '0'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = / at (http:\/\/[^\s]+) /.exec(output);
      if (match !== null) resolve(match[1]!);
    });
    child.once('exit', (code) =>
      reject(new Error(`moerl serve exited (${code}) before listening: ${output}`)),
    );
  });
  return { url, child };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function measure(overrides: RunConfigInput, async: number, server: string | undefined, serverPid = 0) {
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
      ...(server === undefined ? [] : [`rollout.servers=["${server}"]`]),
    ],
    config: overrides,
  });
  const cpuBefore = process.cpuUsage();
  const serverCpuBefore = server === undefined ? 0 : processCpuSeconds(serverPid);
  const start = performance.now();
  try {
    const { metrics } = await trainRun({ config, directory });
    const wall = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const serverCpu = server === undefined ? 0 : processCpuSeconds(serverPid) - serverCpuBefore;
    const times = metrics.map((row) => Date.parse(row.time ?? ''));
    const perStep = times.slice(1).map((time, index) => (time - times[index]!) / 1000);
    const later = metrics.slice(1);
    // Each step against the longer of its own two phases (dynamic sampling makes steps differ in size, so
    // medians taken over different runs would compare different work).
    const overPhases = perStep
      .slice(0, -1)
      .map((seconds, index) => seconds / Math.max(later[index]!.rolloutSeconds, later[index]!.trainSeconds));
    return {
      overPhases: median(overPhases),
      step: median(perStep.slice(0, -1)),
      rollout: median(later.map((row) => row.rolloutSeconds)),
      train: median(later.map((row) => row.trainSeconds)),
      waited: median(later.map((row) => row.rolloutWaitSeconds ?? Number.NaN)),
      cpu: ((cpu.user + cpu.system) / 1e6 + serverCpu) / wall / availableParallelism(),
    };
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

console.log(
  `moerl RL step time, synchronous vs rollout.async 1 (${steps} steps, R3, ${availableParallelism()} cores)`,
);
console.log(
  'setting        | sync s/step | async s/step | rollout, train s (sync) | waited sync/async | CPU sync/async | sync / async | async / max(rollout, train) | async / max of sync phases',
);
// `--setting=<name>` runs one setting only.
const only = process.argv.find((argument) => argument.startsWith('--setting='))?.slice('--setting='.length);
for (const [name, { config, server }] of Object.entries(settings)) {
  if (only !== undefined && name !== only) continue;
  const served = server === undefined ? undefined : await startServer(server);
  try {
    const results: Record<number, Awaited<ReturnType<typeof measure>>[]> = { 0: [], 1: [] };
    for (let round = 0; round < rounds; round++) {
      for (const async of [0, 1])
        results[async]!.push(await measure(config, async, served?.url, served?.child.pid));
    }
    const best = (async: number) => results[async]!.reduce((a, b) => (a.step <= b.step ? a : b));
    const sync = best(0);
    const pipelined = best(1);
    console.log(
      [
        name.padEnd(14),
        sync.step.toFixed(3).padStart(11),
        pipelined.step.toFixed(3).padStart(12),
        `${sync.rollout.toFixed(2)}, ${sync.train.toFixed(2)}`.padStart(23),
        `${sync.waited.toFixed(3)} / ${pipelined.waited.toFixed(3)}`.padStart(17),
        `${(100 * sync.cpu).toFixed(0)}% / ${(100 * pipelined.cpu).toFixed(0)}%`.padStart(14),
        `${(sync.step / pipelined.step).toFixed(2)}×`.padStart(12),
        `${pipelined.overPhases.toFixed(2)}×`.padStart(27),
        // Against the phases timed alone (the sync run): contention shows here, mixed with the different
        // batches stale rollouts leave dynamic sampling.
        `${(pipelined.step / Math.max(sync.rollout, sync.train)).toFixed(2)}×`.padStart(26),
      ].join(' | '),
    );
  } finally {
    served?.child.kill('SIGTERM');
  }
}
