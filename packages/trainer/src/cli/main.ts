import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { type InferencePrecision, MoerlError } from '@moerl/core';
import { Command, CommanderError, Option } from 'commander';
import { listPresets } from '../config/presets.js';
import type { RunConfig } from '../config/run-config-schema.js';
import type { RunRecord, StepMetrics } from '../metrics/step-metrics.js';
import { summarizeRun } from '../report/run-summary.js';
import { assertRunDirectory, runPaths } from '../run/run-directory.js';
import { STUDY_ARMS } from '../study/study-arms.js';
import { workspaceRoot } from './run-benchmarks.js';
import { summaryTable } from './summary-table.js';

// The heavy modules (TensorFlow.js and onnxruntime through the backends, vega for the report) are
// imported by the commands that need them, so `moerl --help`, `config` and `inspect` start fast.

interface ConfigFlags {
  preset?: string;
  config?: string;
  model?: string;
  set?: string[];
}

/** Exit status of a usage error (bad flags, bad config, bad paths), as most CLIs use it. */
const USAGE_EXIT_CODE = 2;
const USAGE_ERROR_CODES = ['CONFIG_INVALID', 'INVALID_ARGUMENT'] as const;
/** 128 + the signal number: what a shell reports for a process a signal stopped. */
const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;

const skippedOf = (metrics: readonly StepMetrics[]) => metrics.at(-1)?.skippedSteps ?? 0;

const collect = (value: string, previous: string[] = []) => [...previous, value];

const version = (): string =>
  (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

/** JSON lines: NaN and ±Infinity (no JSON numbers) are written as null. */
const json = (value: unknown) =>
  `${JSON.stringify(value, (_key, item) => (typeof item === 'number' && !Number.isFinite(item) ? null : item))}\n`;

function configOptions(command: Command): Command {
  return command
    .option(
      '-p, --preset <names>',
      `preset(s), comma-separated, merged in order (${listPresets().join(', ')})`,
    )
    .option('-c, --config <file>', 'config file (JSON or YAML)')
    .option(
      '-m, --model <dir>',
      'start from a Hugging Face model directory (config.json + safetensors): sets model.path',
    )
    .option('-s, --set <key=value>', 'override one field, e.g. --set train.steps=20 (repeatable)', collect);
}

async function configFrom(flags: ConfigFlags, extraPresets: readonly string[] = []): Promise<RunConfig> {
  const { resolveRunConfig } = await import('../config/resolve-run-config.js');
  const presets = [...(flags.preset?.split(',').filter(Boolean) ?? []), ...extraPresets];
  // --model is model.path, set before the --set flags (which may still change it).
  const overrides = [
    ...(flags.model === undefined ? [] : [`model.path=${flags.model}`]),
    ...(flags.set ?? []),
  ];
  return resolveRunConfig({
    ...(presets.length > 0 ? { preset: presets } : {}),
    ...(flags.config === undefined ? {} : { file: flags.config }),
    ...(overrides.length > 0 ? { overrides } : {}),
  });
}

interface Interrupt {
  readonly signal: AbortSignal;
  /** The exit status for the signal that stopped the run, if one did. */
  exitCode(): number | undefined;
  dispose(): void;
}

/**
 * Ctrl-C (SIGINT) or SIGTERM once: finish the current step, checkpoint, stop, and exit 130 / 143.
 * A second signal exits at once.
 */
function interruptSignal(): Interrupt {
  const controller = new AbortController();
  let received: keyof typeof SIGNAL_EXIT_CODES | undefined;
  const second = (name: keyof typeof SIGNAL_EXIT_CODES) => () => process.exit(SIGNAL_EXIT_CODES[name]);
  const first = (name: keyof typeof SIGNAL_EXIT_CODES) => () => {
    if (received !== undefined) return second(name)();
    received = name;
    process.stderr.write(
      `\n${name}: stopping after the current step and its checkpoint (${name === 'SIGINT' ? 'Ctrl-C' : 'the signal'} again to exit now)…\n`,
    );
    controller.abort();
  };
  const handlers = { SIGINT: first('SIGINT'), SIGTERM: first('SIGTERM') };
  process.on('SIGINT', handlers.SIGINT);
  process.on('SIGTERM', handlers.SIGTERM);
  return {
    signal: controller.signal,
    exitCode: () => (received === undefined ? undefined : SIGNAL_EXIT_CODES[received]),
    dispose: () => {
      process.off('SIGINT', handlers.SIGINT);
      process.off('SIGTERM', handlers.SIGTERM);
    },
  };
}

/** Reads a run directory as the report draws it; says so when the path is not a run directory. */
async function readRunRecord(directory: string, command: string): Promise<RunRecord> {
  const { readFile } = await import('node:fs/promises');
  const { readInitialEvals, readMetrics } = await import('../run/run-directory.js');
  const paths = runPaths(directory);
  await assertRunDirectory(paths, command);
  const config = JSON.parse(await readFile(paths.config, 'utf8')) as RunConfig;
  const metrics = await readMetrics(paths.metrics).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return [];
  });
  const initial = await readInitialEvals(paths);
  return {
    name: config.name,
    config,
    metrics,
    initialEvalAccuracy: initial.evalAccuracy,
    initialSeenEvalAccuracy: initial.seenEvalAccuracy,
  };
}

export function createProgram(): Command {
  const program = new Command('moerl')
    .description('Reinforcement learning for Mixture-of-Experts LMs with Rollout Routing Replay (R3).')
    .version(version(), '-V, --version', 'print the version of moerl')
    .showHelpAfterError();

  configOptions(
    program.command('train').description('train one run (warm start, then GRPO/GSPO with routing replay)'),
  )
    .option('-o, --out <dir>', 'run directory (default: runs/<name>)')
    .option('--resume', 'continue from the run directory’s latest checkpoint')
    .option('--force', 'replace a run already in the run directory (its files are removed)')
    .option('-q, --quiet', 'no progress output')
    .option('--json', 'one JSON line per step on stdout, then one with the run’s "summary"')
    .action(
      async (
        flags: ConfigFlags & {
          out?: string;
          resume?: boolean;
          force?: boolean;
          quiet?: boolean;
          json?: boolean;
        },
      ) => {
        // `--resume` alone continues with the config the run was started with.
        const reuseSaved =
          flags.resume === true &&
          flags.preset === undefined &&
          flags.config === undefined &&
          flags.model === undefined &&
          flags.set === undefined;
        if (reuseSaved && flags.out === undefined) {
          throw new MoerlError(
            'INVALID_ARGUMENT',
            '--resume needs --out <run directory> (or the flags the run was started with)',
          );
        }
        if (flags.resume === true && flags.force === true) {
          throw new MoerlError('INVALID_ARGUMENT', '--resume and --force exclude each other');
        }
        const config = reuseSaved
          ? await (await import('../config/resolve-run-config.js')).resolveRunConfig({
              file: runPaths(flags.out!).config,
            })
          : await configFrom(flags);
        const directory = flags.out ?? join('runs', config.name);
        const [{ trainRun }, { writeHtmlReport }, { progressEvents }, { allStepsSkippedError }] =
          await Promise.all([
            import('../run/train-run.js'),
            import('../report/html-report.js'),
            import('./progress-events.js'),
            import('../run/checked-update.js'),
          ]);
        const events = progressEvents({
          runName: config.name,
          quiet: flags.quiet === true,
          json: flags.json === true,
        });
        const interrupt = interruptSignal();
        try {
          const result = await trainRun({
            config,
            directory,
            events,
            signal: interrupt.signal,
            resume: flags.resume === true,
            force: flags.force === true,
          });
          const record = {
            name: config.name,
            config,
            metrics: result.metrics,
            initialEvalAccuracy: result.initialEvalAccuracy,
            initialSeenEvalAccuracy: result.initialSeenEvalAccuracy,
          };
          await writeHtmlReport(result.paths.report, [record]);
          if (flags.json === true) {
            process.stdout.write(
              json({
                run: config.name,
                summary: summarizeRun(record),
                directory,
                report: result.paths.report,
                stoppedEarly: result.stoppedEarly,
                allStepsSkipped: result.allStepsSkipped,
              }),
            );
          } else {
            process.stdout.write(`${summaryTable([record])}\n`);
            process.stdout.write(`run directory: ${directory}\nreport: ${result.paths.report}\n`);
          }
          if (result.allStepsSkipped)
            throw allStepsSkippedError(result.metrics.length, skippedOf(result.metrics));
          const stopped = interrupt.exitCode();
          if (stopped !== undefined) {
            process.stderr.write(
              `stopped after step ${result.metrics.at(-1)?.step ?? 0}; continue with --resume\n`,
            );
            process.exitCode = stopped;
          }
        } finally {
          interrupt.dispose();
          events.stop();
        }
      },
    );

  configOptions(
    program
      .command('compare')
      .description(
        'run several variants on the same seeds and task, print a summary table, write report.html',
      ),
  )
    .option(
      '-r, --runs <presets>',
      'variant presets, comma-separated, each merged over --preset',
      'grpo,grpo-r3',
    )
    .option('-o, --out <dir>', 'directory for the runs and the report', 'runs/compare')
    .option('--force', 'replace runs already in the directory')
    .option('-q, --quiet', 'no progress output')
    .option('--json', 'no progress; one JSON object with every run’s summary and the report path')
    .action(
      async (
        flags: ConfigFlags & { runs: string; out: string; force?: boolean; quiet?: boolean; json?: boolean },
      ) => {
        const configs: RunConfig[] = [];
        for (const variant of flags.runs.split(',').filter(Boolean)) {
          const config = await configFrom(flags, [variant]);
          configs.push({ ...config, name: variant });
        }
        const [{ compareRuns }, { progressEvents }] = await Promise.all([
          import('../run/compare-runs.js'),
          import('./progress-events.js'),
        ]);
        const interrupt = interruptSignal();
        try {
          const result = await compareRuns({
            configs,
            directory: flags.out,
            force: flags.force === true,
            signal: interrupt.signal,
            eventsFor: (config) =>
              progressEvents({ runName: config.name, quiet: flags.quiet === true || flags.json === true }),
          });
          if (flags.json === true) {
            process.stdout.write(
              json({
                runs: result.runs.map((run) => ({ ...summarizeRun(run), wallSeconds: run.wallSeconds })),
                report: result.reportPath,
              }),
            );
          } else {
            process.stdout.write(`\n${summaryTable(result.runs)}\n\nreport: ${result.reportPath}\n`);
          }
          const diverged = result.runs.filter(
            (run) => run.metrics.length > 0 && run.metrics.every((row) => row.skipped === true),
          );
          if (diverged.length > 0) {
            throw new MoerlError(
              'NON_FINITE',
              `every RL step was skipped in ${diverged.map((run) => run.name).join(', ')} (non-finite loss, gradient or updated weights): their policies never changed`,
              { details: { runs: diverged.map((run) => run.name) } },
            );
          }
          const stopped = interrupt.exitCode();
          if (stopped !== undefined) process.exitCode = stopped;
        } finally {
          interrupt.dispose();
        }
      },
    );

  const study = program
    .command('study')
    .description('the R3 study: where the training–inference mismatch comes from and what replay does to it');
  configOptions(
    study
      .command('precision')
      .description(
        'one warm-started model sampled in fp32, fp16, bf16 and FP8: router flips, KL free vs replayed, |Δlogp| tail, and the KL on tokens whose routing flipped',
      ),
  )
    .option(
      '-n, --prompts <n>',
      'training-distribution prompts per variant',
      (value) => Number.parseInt(value, 10),
      64,
    )
    .option('-o, --out <file>', 'JSON file for the rows', 'runs/study/precision-panel.json')
    .option('-q, --quiet', 'no progress output')
    .action(async (flags: ConfigFlags & { prompts: number; out: string; quiet?: boolean }) => {
      const config = await configFrom(flags);
      const [
        { mkdir },
        { dirname },
        { writeFileAtomic },
        { precisionPanel, precisionPanelTable },
        { progressEvents },
      ] = await Promise.all([
        import('node:fs/promises'),
        import('node:path'),
        import('@moerl/core'),
        import('../study/precision-panel.js'),
        import('./progress-events.js'),
      ]);
      const events = progressEvents({ runName: 'precision', quiet: flags.quiet === true });
      try {
        const result = await precisionPanel({ config, prompts: flags.prompts, events });
        await mkdir(dirname(flags.out), { recursive: true });
        await writeFileAtomic(flags.out, `${JSON.stringify({ config, ...result }, null, 2)}\n`);
        process.stdout.write(
          `\nprecision panel: ${result.prompts} prompts × ${result.samplesPerPrompt} samples per variant, fp32 trainer (${config.model.numExperts} experts, top-${config.model.topK})\n${precisionPanelTable(result.rows)}\n\nrows: ${flags.out}\n`,
        );
      } finally {
        events.stop();
      }
    });

  configOptions(
    study
      .command('stability')
      .description(
        'arms (free, R2, R3, free-tis, fp32-engine) × seeds on one config: collapses counted by fixed criteria, accuracy gain with a CI, KL free vs replay per step; prints a verdict computed from the runs',
      ),
  )
    .option('-a, --arms <arms>', `arms, comma-separated (${Object.keys(STUDY_ARMS).join(', ')})`, 'free,R3')
    .option('--seeds <seeds>', 'seeds, comma-separated', '0,1')
    .option('-o, --out <dir>', 'directory for the runs, report.html and study.json', 'runs/study')
    .option('--force', 'replace runs already in the output directory')
    .option(
      '-j, --jobs <n>',
      'seeds run side by side, each in its own process (default: one per core, at most one per seed; results do not depend on it)',
      (value) => Number.parseInt(value, 10),
    )
    .option('-q, --quiet', 'no progress output')
    .action(
      async (
        flags: ConfigFlags & {
          arms: string;
          seeds: string;
          out: string;
          force?: boolean;
          quiet?: boolean;
          jobs?: number;
        },
      ) => {
        const base = await configFrom(flags);
        const [
          { writeFileAtomic },
          { DEFAULT_COLLAPSE_CRITERIA },
          { armConfig, armTable, stabilityStudy },
          { progressEvents },
        ] = await Promise.all([
          import('@moerl/core'),
          import('../study/collapse.js'),
          import('../study/stability-study.js'),
          import('./progress-events.js'),
        ]);
        const arms = flags.arms.split(',').filter(Boolean);
        const seeds = flags.seeds
          .split(',')
          .filter(Boolean)
          .map((seed) => Number.parseInt(seed, 10));
        for (const arm of arms) armConfig(base, arm, 0);
        if (flags.jobs !== undefined && !(Number.isInteger(flags.jobs) && flags.jobs > 0)) {
          throw new MoerlError('INVALID_ARGUMENT', `--jobs must be a positive integer, found ${flags.jobs}`);
        }
        const jobs = flags.jobs ?? Math.min(availableParallelism(), seeds.length);
        const interrupt = interruptSignal();
        const result = await stabilityStudy({
          base,
          arms,
          seeds,
          directory: flags.out,
          force: flags.force === true,
          signal: interrupt.signal,
          jobs,
          eventsFor: (name) =>
            progressEvents({ runName: name, quiet: flags.quiet === true, plain: jobs > 1 }),
        }).finally(() => interrupt.dispose());
        await writeFileAtomic(
          join(flags.out, 'study.json'),
          `${JSON.stringify(
            {
              base,
              arms,
              seeds,
              criteria: DEFAULT_COLLAPSE_CRITERIA,
              summaries: result.summaries,
              collapses: result.runs.map((run) => ({ run: run.name, ...run.collapse })),
              verdict: result.verdict,
            },
            null,
            2,
          )}\n`,
        );
        process.stdout.write(
          `\n${armTable(result.summaries)}\n\nverdict: ${result.verdict}\n\nreport: ${result.reportPath}\n`,
        );
        const stopped = interrupt.exitCode();
        if (stopped !== undefined) process.exitCode = stopped;
      },
    );

  program
    .command('eval')
    .description('greedy held-out accuracy of a run’s latest checkpoint')
    .argument('<run-dir>')
    .option('-n, --size <n>', 'problems to evaluate (default: the run’s eval.size)', (value) =>
      Number.parseInt(value, 10),
    )
    .option('--json', 'one JSON object: step, accuracy, problems')
    .action(async (directory: string, flags: { size?: number; json?: boolean }) => {
      if (flags.size !== undefined && !(Number.isInteger(flags.size) && flags.size > 0)) {
        throw new MoerlError('INVALID_ARGUMENT', `--size must be a positive integer, found ${flags.size}`);
      }
      const { evaluateRun } = await import('../run/evaluate-run.js');
      const result = await evaluateRun(directory, flags.size === undefined ? {} : { size: flags.size });
      process.stdout.write(
        flags.json === true
          ? json({ directory, ...result })
          : `step ${result.step}: accuracy ${result.accuracy.toFixed(3)} on ${result.problems} held-out problems\n`,
      );
    });

  program
    .command('report')
    .description('write one HTML report over run directories')
    .argument('<run-dirs...>')
    .option('-o, --out <file>', 'report file', 'report.html')
    .action(async (directories: string[], flags: { out: string }) => {
      const runs: RunRecord[] = [];
      for (const directory of directories) runs.push(await readRunRecord(directory, 'report'));
      const { writeHtmlReport } = await import('../report/html-report.js');
      await writeHtmlReport(flags.out, runs);
      process.stdout.write(`${summaryTable(runs)}\n\nreport: ${flags.out}\n`);
    });

  program
    .command('inspect')
    .description('show a checkpoint: model config, tensors, dtypes, shapes, sizes')
    .argument('<path>', 'run directory, checkpoint directory, .safetensors or config.json')
    .option('--json', 'one JSON object: configs and tensor files with every tensor')
    .action(async (path: string, flags: { json?: boolean }) => {
      const { describeCheckpoint, inspectCheckpoint } = await import('./inspect-checkpoint.js');
      process.stdout.write(
        flags.json === true ? json(await describeCheckpoint(path)) : `${await inspectCheckpoint(path)}\n`,
      );
    });

  program
    .command('export')
    .description(
      'write a run’s latest checkpoint as a Hugging Face model directory (config, weights, tokenizer)',
    )
    .argument('<run-dir>')
    .requiredOption('-o, --out <dir>', 'the model directory to write')
    .option('--force', 'replace a directory that already holds files')
    .action(async (directory: string, flags: { out: string; force?: boolean }) => {
      const { exportRun } = await import('./export-run.js');
      const files = await exportRun(directory, flags.out, { force: flags.force === true });
      process.stdout.write(`${flags.out}: ${files.join(', ')}\n`);
    });

  program
    // Installed from npm there are no benchmarks to run: the command shows only inside a checkout.
    .command('bench', { hidden: workspaceRoot(process.cwd()) === undefined })
    .description('run the benchmarks of the packages (inside a moerl checkout) and print their ratios')
    .option('--quick', 'fewer rounds')
    .option('--only <packages>', 'package folders, comma-separated (e.g. router-cache,algos)')
    .action(async (flags: { quick?: boolean; only?: string }) => {
      const { runBenchmarks } = await import('./run-benchmarks.js');
      const failures = await runBenchmarks({
        quick: flags.quick === true,
        ...(flags.only === undefined ? {} : { only: flags.only.split(',') }),
      });
      if (failures > 0) process.exitCode = 1;
    });

  configOptions(program.command('serve'))
    .description(
      'serve a checkpoint on the onnx engine behind the SGLang /generate and vLLM /v1/completions protocols (with routed experts)',
    )
    .argument(
      '[path]',
      'run directory (its latest checkpoint) or checkpoint directory (config.json + model.safetensors); without it, the initial model of the config given by --preset/--config/--set, for a trainer to push its policy to',
    )
    .option('--host <host>', 'address to listen on (loopback unless you say otherwise)', '127.0.0.1')
    .option('--port <port>', 'port (0: any free one)', (value) => Number.parseInt(value, 10), 30000)
    .option(
      '--threads <n>',
      'onnxruntime intra-op threads (default: its own choice, one per core); 1 leaves a core to a trainer on the same machine',
      (value) => Number(value),
    )
    .addOption(
      new Option(
        '--precision <precision>',
        'inference precision (default: the config’s rollout.precision, else bf16; fp8 takes rollout.fp8)',
      ).choices(['fp32', 'bf16', 'fp16', 'fp8']),
    )
    .action(
      async (
        path: string | undefined,
        flags: ConfigFlags & { host: string; port: number; threads?: number; precision?: InferencePrecision },
      ) => {
        if (!(Number.isInteger(flags.port) && flags.port >= 0 && flags.port <= 65535)) {
          throw new MoerlError(
            'INVALID_ARGUMENT',
            `--port must be an integer from 0 to 65535, found ${flags.port}`,
          );
        }
        if (flags.threads !== undefined && !(Number.isInteger(flags.threads) && flags.threads >= 1)) {
          throw new MoerlError(
            'INVALID_ARGUMENT',
            `--threads must be a positive integer, found ${flags.threads}`,
          );
        }
        const { rm } = await import('node:fs/promises');
        const [{ serveOnnxEngine }, { writeInitialCheckpoint }, { checkpointDirectory }] = await Promise.all([
          import('../serve/serve-onnx-engine.js'),
          import('./initial-checkpoint.js'),
          import('./inspect-checkpoint.js'),
        ]);
        const config = path === undefined ? await configFrom(flags) : undefined;
        const initial = config === undefined ? undefined : await writeInitialCheckpoint(config);
        try {
          const checkpointDir = initial ?? (await checkpointDirectory(path!));
          const served = await serveOnnxEngine({
            checkpointDir,
            host: flags.host,
            port: flags.port,
            precision: flags.precision ?? config?.rollout.precision ?? 'bf16',
            ...(flags.threads === undefined ? {} : { intraOpNumThreads: flags.threads }),
            ...(config === undefined ? {} : { fp8: config.rollout.fp8 }),
          });
          process.stdout.write(
            `serving ${initial === undefined ? checkpointDir : 'the initial model of the config'} at ${served.url} (POST /generate, POST /v1/completions, GET /health); Ctrl-C stops\n`,
          );
          await new Promise<void>((resolve) => {
            process.once('SIGINT', () => resolve());
            process.once('SIGTERM', () => resolve());
          });
          await served.close();
        } finally {
          if (initial !== undefined) await rm(initial, { recursive: true, force: true });
        }
      },
    );

  configOptions(
    program.command('config').description('print the resolved config, or every field with its default'),
  )
    .addOption(new Option('--docs', 'print the documentation of every field (Markdown)'))
    .option(
      '--json-schema',
      'print the JSON Schema of config files (save it and point a file’s "$schema" at it for editor completion)',
    )
    .option('--tasks', 'list the registered tasks')
    .action(async (flags: ConfigFlags & { docs?: boolean; tasks?: boolean; jsonSchema?: boolean }) => {
      if (flags.jsonSchema === true) {
        const { configJsonSchema } = await import('../config/config-docs.js');
        process.stdout.write(json(configJsonSchema()));
      } else if (flags.docs === true) {
        const { configDocsMarkdown } = await import('../config/config-docs.js');
        process.stdout.write(`${configDocsMarkdown()}\n`);
      } else if (flags.tasks === true) {
        // A config's plugins may register tasks: import them first.
        if (flags.config !== undefined || flags.set !== undefined || flags.preset !== undefined) {
          const { importPlugins } = await import('../run/preflight.js');
          await importPlugins((await configFrom(flags)).plugins);
        }
        const { listTasks } = await import('../tasks/task-registry.js');
        process.stdout.write(`${listTasks().join('\n')}\n`);
      } else {
        const config = await configFrom(flags);
        // The checks a run makes before it starts (model cross-field sizes, task, objective, plugins).
        const { preflightRun } = await import('../run/preflight.js');
        await preflightRun(config);
        process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
      }
    });

  return program;
}

/**
 * Runs the CLI and returns its exit status: 0, 1 for a failed run, 2 for a usage error (unknown flag,
 * bad config or path), 130/143 after a run stopped by SIGINT/SIGTERM (set by the command). Known
 * problems print their message only; anything else keeps its stack for a bug report.
 */
export async function runCli(
  argv: readonly string[],
  stderr: (text: string) => void = (text) => process.stderr.write(text),
): Promise<number> {
  const program = createProgram().exitOverride();
  // Subcommands copied the root's settings when they were made: they throw too, instead of exiting.
  for (const command of program.commands) command.exitOverride();
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander printed the message (and the help); --help and --version end here too.
      return error.exitCode === 0 ? 0 : USAGE_EXIT_CODE;
    }
    if (MoerlError.isInstance(error)) {
      stderr(`moerl: ${error.message}\n`);
      return USAGE_ERROR_CODES.some((code) => error.code === code) ? USAGE_EXIT_CODE : 1;
    }
    stderr(`moerl: unexpected error\n${(error as Error)?.stack ?? String(error)}\n`);
    return 1;
  }
}
