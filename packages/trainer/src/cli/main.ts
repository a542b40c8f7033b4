import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MoerlError } from '@moerl/core';
import { serveOnnxEngine } from '@moerl/rollout-http';
import { Command, Option } from 'commander';
import { configDocsMarkdown } from '../config/config-docs.js';
import { listPresets } from '../config/presets.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import type { RunConfig } from '../config/run-config-schema.js';
import type { StepMetrics } from '../metrics/step-metrics.js';
import { writeHtmlReport } from '../report/html-report.js';
import { allStepsSkippedError } from '../run/checked-update.js';
import { compareRuns } from '../run/compare-runs.js';
import { evaluateRun } from '../run/evaluate-run.js';
import { preflightRun } from '../run/preflight.js';
import { readInitialEval, readMetrics, runPaths } from '../run/run-directory.js';
import { trainRun } from '../run/train-run.js';
import { listTasks } from '../tasks/task-registry.js';
import { writeInitialCheckpoint } from './initial-checkpoint.js';
import { checkpointDirectory, inspectCheckpoint } from './inspect-checkpoint.js';
import { progressEvents } from './progress-events.js';
import { runBenchmarks } from './run-benchmarks.js';
import { summaryTable } from './summary-table.js';

interface ConfigFlags {
  preset?: string;
  config?: string;
  set?: string[];
}

const skippedOf = (metrics: readonly StepMetrics[]) => metrics.at(-1)?.skippedSteps ?? 0;

const collect = (value: string, previous: string[] = []) => [...previous, value];

function configOptions(command: Command): Command {
  return command
    .option(
      '-p, --preset <names>',
      `preset(s), comma-separated, merged in order (${listPresets().join(', ')})`,
    )
    .option('-c, --config <file>', 'config file (JSON or YAML)')
    .option('-s, --set <key=value>', 'override one field, e.g. --set train.steps=20 (repeatable)', collect);
}

function configFrom(flags: ConfigFlags, extraPresets: readonly string[] = []): Promise<RunConfig> {
  const presets = [...(flags.preset?.split(',').filter(Boolean) ?? []), ...extraPresets];
  return resolveRunConfig({
    ...(presets.length > 0 ? { preset: presets } : {}),
    ...(flags.config === undefined ? {} : { file: flags.config }),
    ...(flags.set === undefined ? {} : { overrides: flags.set }),
  });
}

/** Ctrl-C once: finish the current step, checkpoint, stop. Twice: exit now. */
function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  process.once('SIGINT', () => {
    process.stderr.write('\nstopping after the current step (Ctrl-C again to exit now)…\n');
    controller.abort();
    process.once('SIGINT', () => process.exit(130));
  });
  return controller.signal;
}

export function createProgram(): Command {
  const program = new Command('moerl')
    .description('Reinforcement learning for Mixture-of-Experts LMs with Rollout Routing Replay (R3).')
    .showHelpAfterError();

  configOptions(
    program.command('train').description('train one run (warm start, then GRPO/GSPO with routing replay)'),
  )
    .option('-o, --out <dir>', 'run directory (default: runs/<name>)')
    .option('--resume', 'continue from the run directory’s latest checkpoint')
    .option('--force', 'replace a run already in the run directory (its files are removed)')
    .option('-q, --quiet', 'no progress output')
    .option('--json', 'one JSON line per step on stdout')
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
          flags.set === undefined;
        if (reuseSaved && flags.out === undefined) {
          throw new MoerlError(
            'CONFIG_INVALID',
            '--resume needs --out <run directory> (or the flags the run was started with)',
          );
        }
        const config = reuseSaved
          ? await resolveRunConfig({ file: runPaths(flags.out!).config })
          : await configFrom(flags);
        const directory = flags.out ?? join('runs', config.name);
        const events = progressEvents({
          runName: config.name,
          quiet: flags.quiet === true,
          json: flags.json === true,
        });
        try {
          const result = await trainRun({
            config,
            directory,
            events,
            signal: interruptSignal(),
            resume: flags.resume === true,
            force: flags.force === true,
          });
          const record = {
            name: config.name,
            config,
            metrics: result.metrics,
            initialEvalAccuracy: result.initialEvalAccuracy,
          };
          await writeHtmlReport(result.paths.report, [record]);
          if (flags.json !== true) {
            process.stdout.write(`${summaryTable([record])}\n`);
            process.stdout.write(`run directory: ${directory}\nreport: ${result.paths.report}\n`);
          }
          if (result.allStepsSkipped)
            throw allStepsSkippedError(result.metrics.length, skippedOf(result.metrics));
        } finally {
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
    .action(async (flags: ConfigFlags & { runs: string; out: string; force?: boolean; quiet?: boolean }) => {
      const configs: RunConfig[] = [];
      for (const variant of flags.runs.split(',').filter(Boolean)) {
        const config = await configFrom(flags, [variant]);
        configs.push({ ...config, name: variant });
      }
      const signal = interruptSignal();
      const result = await compareRuns({
        configs,
        directory: flags.out,
        force: flags.force === true,
        signal,
        eventsFor: (config) => progressEvents({ runName: config.name, quiet: flags.quiet === true }),
      });
      process.stdout.write(`\n${summaryTable(result.runs)}\n\nreport: ${result.reportPath}\n`);
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
    });

  program
    .command('eval')
    .description('greedy held-out accuracy of a run’s latest checkpoint')
    .argument('<run-dir>')
    .option('-n, --size <n>', 'problems to evaluate (default: the run’s eval.size)', (value) =>
      Number.parseInt(value, 10),
    )
    .action(async (directory: string, flags: { size?: number }) => {
      const result = await evaluateRun(directory, flags.size === undefined ? {} : { size: flags.size });
      process.stdout.write(
        `step ${result.step}: accuracy ${result.accuracy.toFixed(3)} on ${result.problems} held-out problems\n`,
      );
    });

  program
    .command('report')
    .description('write one HTML report over run directories')
    .argument('<run-dirs...>')
    .option('-o, --out <file>', 'report file', 'report.html')
    .action(async (directories: string[], flags: { out: string }) => {
      const runs = [];
      for (const directory of directories) {
        const paths = runPaths(directory);
        const { readFile } = await import('node:fs/promises');
        const config = JSON.parse(await readFile(paths.config, 'utf8')) as RunConfig;
        runs.push({
          name: config.name,
          config,
          metrics: await readMetrics(paths.metrics),
          initialEvalAccuracy: await readInitialEval(paths),
        });
      }
      await writeHtmlReport(flags.out, runs);
      process.stdout.write(`${summaryTable(runs)}\n\nreport: ${flags.out}\n`);
    });

  program
    .command('inspect')
    .description('show a checkpoint: model config, tensors, dtypes, shapes, sizes')
    .argument('<path>', 'run directory, checkpoint directory, .safetensors or config.json')
    .action(async (path: string) => {
      process.stdout.write(`${await inspectCheckpoint(path)}\n`);
    });

  program
    .command('bench')
    .description('run the benchmarks of the packages (inside a moerl checkout) and print their ratios')
    .option('--quick', 'fewer rounds')
    .option('--only <packages>', 'package folders, comma-separated (e.g. router-cache,algos)')
    .action(async (flags: { quick?: boolean; only?: string }) => {
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
      '--precision <precision>',
      'fp32, bf16 or fp16 (default: the config’s rollout.precision, else bf16)',
    )
    .action(
      async (
        path: string | undefined,
        flags: ConfigFlags & { host: string; port: number; precision?: 'fp32' | 'bf16' | 'fp16' },
      ) => {
        const config = path === undefined ? await configFrom(flags) : undefined;
        const initial = config === undefined ? undefined : await writeInitialCheckpoint(config);
        try {
          const checkpointDir = initial ?? (await checkpointDirectory(path!));
          const served = await serveOnnxEngine({
            checkpointDir,
            host: flags.host,
            port: flags.port,
            precision: flags.precision ?? config?.rollout.precision ?? 'bf16',
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
    .option('--tasks', 'list the registered tasks')
    .action(async (flags: ConfigFlags & { docs?: boolean; tasks?: boolean }) => {
      if (flags.docs === true) process.stdout.write(`${configDocsMarkdown()}\n`);
      else if (flags.tasks === true) process.stdout.write(`${listTasks().join('\n')}\n`);
      else {
        const config = await configFrom(flags);
        // The checks a run makes before it starts (model cross-field sizes, task, objective, plugins).
        await preflightRun(config);
        process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
      }
    });

  return program;
}
