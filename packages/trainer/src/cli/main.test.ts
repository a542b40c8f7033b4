import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { serveOnnxEngine } from '../serve/serve-onnx-engine.js';
import { writeInitialCheckpoint } from './initial-checkpoint.js';
import { checkpointDirectory } from './inspect-checkpoint.js';
import { createProgram, runCli } from './main.js';

async function run(...args: string[]): Promise<string> {
  let output = '';
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    output += String(chunk);
    return true;
  });
  try {
    await createProgram()
      .exitOverride()
      .parseAsync(['node', 'moerl', ...args]);
  } finally {
    write.mockRestore();
  }
  return output;
}

/** Runs the CLI as `bin.js` does; returns the exit status and what went to stdout and stderr. */
async function cli(
  args: readonly string[],
  onStdout: (chunk: string) => void = () => {},
): Promise<{ code: number; stdout: string; stderr: string; exitCode: number | undefined }> {
  let stdout = '';
  let stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    onStdout(String(chunk));
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  const before = process.exitCode;
  try {
    const code = await runCli(['node', 'moerl', ...args]);
    const exitCode = process.exitCode === before ? undefined : Number(process.exitCode);
    return { code, stdout, stderr, exitCode };
  } finally {
    process.exitCode = before;
    vi.restoreAllMocks();
  }
}

afterEach(() => vi.restoreAllMocks());

/** A run small enough for the reference backends, as `--set` flags. */
const tinySettings = [
  'task.name=sort-digits',
  'model.hiddenSize=16',
  'model.numLayers=2',
  'model.mlpOnlyLayers=[]',
  'warmStart.steps=2',
  'rollout.promptsPerStep=2',
  'rollout.groupSize=2',
  'train.steps=2',
  'eval.size=4',
  'backends.trainer=reference',
  'backends.engine=reference',
];
const settings = tinySettings.flatMap((setting) => ['--set', setting]);

describe('moerl CLI', () => {
  it('prints the resolved config with presets and overrides applied', async () => {
    const config = JSON.parse(await run('config', '--preset', 'demo,gspo-r3', '--set', 'train.steps=2'));
    expect(config).toMatchObject({
      name: 'gspo-r3',
      replay: 'R3',
      algorithm: { objective: 'gspo' },
      train: { steps: 2 },
    });
    // --model DIR is model.path (the config's preflight reads its config.json); a later --set still wins.
    await expect(run('config', '--model', 'no-such-model')).rejects.toThrow(
      /Cannot read config file no-such-model\/config\.json/,
    );
    await expect(run('config', '-m', 'no-such-a', '--set', 'model.path=no-such-b')).rejects.toThrow(
      /no-such-b\/config\.json/,
    );
  });

  it('documents every config field', async () => {
    const docs = await run('config', '--docs');
    expect(docs).toContain('| `train.steps` | integer | `30` |');
    expect(docs).toContain('`rollout.precision`');
  });

  it('prints the config JSON Schema, and lists bench only inside a checkout', async () => {
    const schema = JSON.parse(await run('config', '--json-schema')) as {
      properties: Record<string, unknown>;
    };
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['$schema', 'train', 'rollout']));
    const commands = (visible: boolean) =>
      createProgram()
        .commands.filter((command) => !(command as unknown as { _hidden: boolean })._hidden === visible)
        .map((command) => command.name());
    expect(commands(true)).toContain('bench');
    const outside = await mkdtemp(join(tmpdir(), 'moerl-outside-'));
    const cwd = vi.spyOn(process, 'cwd').mockReturnValue(outside);
    try {
      expect(commands(true)).not.toContain('bench');
      expect(commands(false)).toContain('bench');
    } finally {
      cwd.mockRestore();
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('rejects a bad config with the field named', async () => {
    await expect(run('train', '--set', 'rollout.groupSize=0', '--quiet')).rejects.toThrow(
      /rollout\.groupSize/,
    );
  });

  it('prints its version, and exits 2 on usage errors with the problem named', async () => {
    const { version } = JSON.parse(
      await readFile(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as { version: string };
    expect(await cli(['--version'])).toMatchObject({ code: 0, stdout: `${version}\n` });
    const unknown = await cli(['train', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown option '--bogus'");
    const badConfig = await cli(['config', '--set', 'rollout.groupSize=0']);
    expect(badConfig.code).toBe(2);
    expect(badConfig.stderr).toMatch(/^moerl: Invalid config:\n {2}- rollout\.groupSize/);
    expect((await cli(['serve', '--precision', 'fp64'])).code).toBe(2);
    const threads = await cli(['serve', '--threads', '0']);
    expect(threads.code).toBe(2);
    expect(threads.stderr).toContain('--threads must be a positive integer, found 0');
  });

  it('says when report or eval is pointed at something that is not a run directory', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'moerl-cli-'));
    try {
      const missing = await cli(['report', join(directory, 'nope')]);
      expect(missing).toMatchObject({
        code: 2,
        stderr: `moerl: report: ${join(directory, 'nope')} does not exist\n`,
      });
      await writeFile(join(directory, 'notes.txt'), '');
      const notRun = await cli(['eval', directory]);
      expect(notRun.code).toBe(2);
      expect(notRun.stderr).toBe(
        `moerl: eval: ${directory} is not a run directory (expected the config.json a run writes, found notes.txt)\n`,
      );
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('config --tasks imports the config file’s plugins, resolved from the file’s directory', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'moerl-cli-'));
    try {
      const plugin = fileURLToPath(new URL('../__fixtures__/plugin-task.ts', import.meta.url));
      await writeFile(
        join(directory, 'run.json'),
        JSON.stringify({ plugins: [relative(directory, plugin)] }),
      );
      expect(await run('config', '--tasks')).not.toContain('test-plugin-task');
      expect(await run('config', '--tasks', '-c', join(directory, 'run.json'))).toContain(
        'test-plugin-task\n',
      );
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('runs the model cross-field checks in `config`', async () => {
    await expect(run('config', '--set', 'model.topK=99')).rejects.toThrow(
      /model\.topK \(99\) must not exceed numExperts \(8\)/,
    );
  });

  it('fails a run in which every step was skipped, after writing its report', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'moerl-cli-'));
    const plugin = new URL('../__fixtures__/likelihood-objective.ts', import.meta.url).href;
    try {
      await expect(
        run(
          'train',
          ...settings,
          '--set',
          `plugins=["${plugin}"]`,
          '--set',
          'algorithm.objective=test-plugin-likelihood',
          '--set',
          'train.learningRate=1e300',
          '--out',
          join(directory, 'run'),
          '--quiet',
        ),
      ).rejects.toMatchObject({
        code: 'NON_FINITE',
        message: expect.stringMatching(/^every one of the 2 RL step\(s\) was skipped/),
      });
      await expect(readFile(join(directory, 'run', 'report.html'), 'utf8')).resolves.toContain('<html');
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('trains, then inspects and evaluates the run it wrote', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'moerl-cli-'));
    try {
      const summary = await run('train', ...settings, '--out', join(directory, 'run'), '--quiet');
      expect(summary).toMatch(/eval acc/);
      expect(summary).toContain(`report: ${join(directory, 'run', 'report.html')}`);
      const inspected = await run('inspect', join(directory, 'run'));
      expect(inspected).toContain('model.layers.1.mlp.gate.weight');
      expect(await run('eval', join(directory, 'run'))).toMatch(
        /^step 2: accuracy \d\.\d{3} on 4 held-out problems/,
      );
      const evaluated = JSON.parse(await run('eval', join(directory, 'run'), '--json'));
      expect(evaluated).toMatchObject({ directory: join(directory, 'run'), step: 2, problems: 4 });
      const described = JSON.parse(await run('inspect', join(directory, 'run'), '--json'));
      expect(described.configs[0].config).toMatchObject({ numLayers: 2, hiddenSize: 16 });
      expect(described.tensorFiles[0].tensors).toContainEqual(
        expect.objectContaining({ name: 'model.layers.1.mlp.gate.weight', dtype: 'F32' }),
      );
      // A report written under a regular file: the IO_ERROR names the path.
      const underFile = join(directory, 'run', 'config.json', 'report.html');
      const report = await cli(['report', join(directory, 'run'), '--out', underFile]);
      expect(report.code).toBe(1);
      expect(report.stderr).toMatch(
        new RegExp(`^moerl: Could not write ${underFile.replaceAll('/', '\\/')} atomically: ENOTDIR`),
      );
      // Training into it again is refused (exit 2), the run kept.
      const again = await cli(['train', ...settings, '--out', join(directory, 'run'), '--quiet']);
      expect(again.code).toBe(2);
      expect(again.stderr).toContain('already holds a run');
      // What `moerl serve <run>` starts: the run's checkpoint behind the SGLang protocol, on loopback.
      const served = await serveOnnxEngine({
        checkpointDir: await checkpointDirectory(join(directory, 'run')),
        port: 0,
      });
      try {
        expect((await fetch(`${served.url}/health`)).ok).toBe(true);
        const response = await fetch(`${served.url}/generate`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            input_ids: [1, 4, 5],
            sampling_params: { max_new_tokens: 3 },
            return_routed_experts: true,
          }),
        });
        const body = (await response.json()) as {
          output_ids: number[];
          meta_info: { routed_experts: string };
        };
        expect(body.output_ids.length).toBeGreaterThan(0);
        expect(typeof body.meta_info.routed_experts).toBe('string');
      } finally {
        await served.close();
      }
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('train --json: one line per step, then the summary; SIGTERM stops after a step with a checkpoint (143)', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'moerl-cli-'));
    try {
      const result = await cli(
        ['train', ...settings, '--set', 'train.steps=3', '--out', join(directory, 'run'), '--json'],
        (chunk) => {
          if (chunk.includes('"step":1,')) process.emit('SIGTERM', 'SIGTERM');
        },
      );
      expect(result.code).toBe(0);
      expect(result.exitCode).toBe(143);
      expect(result.stderr).toContain('stopped after step 1; continue with --resume');
      const lines = result.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line));
      expect(lines.map((line) => line.step)).toEqual([1, undefined]);
      expect(lines[1]).toMatchObject({
        run: 'run',
        summary: { steps: 1 },
        directory: join(directory, 'run'),
        stoppedEarly: true,
        allStepsSkipped: false,
      });
      expect(await readdir(join(directory, 'run', 'checkpoints'))).toEqual(['latest.json', 'step-000001']);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('serves the initial model of a config, and a train run with rollout.servers samples on it', async () => {
    // `moerl serve --set …` in one terminal, `moerl train --set rollout.servers=[…]` in another.
    const directory = await mkdtemp(join(tmpdir(), 'moerl-cli-'));
    const initial = await writeInitialCheckpoint(await resolveRunConfig({ overrides: tinySettings }));
    const served = await serveOnnxEngine({ checkpointDir: initial, port: 0, precision: 'fp32' });
    try {
      const summary = await run(
        'train',
        ...settings,
        '--set',
        `rollout.servers=["${served.url}"]`,
        '--out',
        join(directory, 'run'),
        '--quiet',
      );
      expect(summary).toMatch(/eval acc/);
      expect(served.stats().requests).toBeGreaterThan(0);
      // The trainer pushed its final policy (step 2) to the server.
      expect(served.engine.stats().weightVersion).toBe(2);
    } finally {
      await served.close();
      await rm(initial, { recursive: true, force: true });
      await rm(directory, { recursive: true, force: true });
    }
  });
});
