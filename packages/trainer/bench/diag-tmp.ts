import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveRunConfig } from '../src/config/resolve-run-config.js';
import { trainRun } from '../src/run/train-run.js';

const directory = await mkdtemp(join(tmpdir(), 'moerl-diag-'));
const config = await resolveRunConfig({
  preset: 'demo',
  overrides: [
    'train.steps=16',
    'warmStart.steps=20',
    'eval.every=0',
    'eval.size=16',
    'replay=R3',
    `rollout.async=${process.argv[2] ?? 1}`,
  ],
  config: { rollout: { promptsPerStep: 4, worker: true, threads: 1 } },
});
const { metrics } = await trainRun({ config, directory });
const t = metrics.map((r) => Date.parse(r.time ?? ''));
for (let i = 1; i < metrics.length; i++)
  console.log(
    i + 1,
    ((t[i]! - t[i - 1]!) / 1000).toFixed(3),
    'train',
    metrics[i]!.trainSeconds.toFixed(3),
    'roll',
    metrics[i]!.rolloutSeconds.toFixed(3),
    'wait',
    (metrics[i]!.rolloutWaitSeconds ?? 0).toFixed(3),
  );
