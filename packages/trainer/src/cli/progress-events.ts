import cliProgress from 'cli-progress';
import type { StepMetrics } from '../metrics/step-metrics.js';
import type { RunEvents } from '../run/run-events.js';

const fixed = (value: number | undefined, digits: number) =>
  value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits);
const scientific = (value: number) => (Number.isFinite(value) ? value.toExponential(1) : '–');

/** The line printed per evaluation (and per step when stderr is not a terminal). */
export function stepLine(runName: string, row: StepMetrics, steps: number): string {
  const evalPart = row.evalAccuracy === undefined ? '' : ` | eval acc ${fixed(row.evalAccuracy, 3)}`;
  // Multi-turn tasks: model turns and tool calls per conversation, and the prompt rows the cache served
  // across turns.
  const toolPart = row.toolCallsPerEpisode ? ` tool calls ${fixed(row.toolCallsPerEpisode, 2)}` : '';
  const turnPart =
    row.turnsPerEpisode === undefined
      ? ''
      : ` turns ${fixed(row.turnsPerEpisode, 2)}${toolPart} cached rows ${row.routingRowsReused ?? 0}`;
  return (
    `[${runName}] step ${row.step}/${steps} reward ${fixed(row.rewardMean, 3)} acc ${fixed(row.accuracy, 2)}` +
    ` KL free ${scientific(row.klFree)} replay ${scientific(row.klReplay)}` +
    ` routing Δ ${fixed(row.tokensWithRoutingDifference, 3)} clip ${fixed(row.clipFraction, 3)}${turnPart}${evalPart}`
  );
}

/**
 * The RL bar's value and label for a phase of `step`: steps done so far (never below 0), and the phase; the
 * evaluation before the first step (step 0) is labelled as such rather than counted as step −1.
 */
export function phaseBar(
  phase: 'rollout' | 'train' | 'eval',
  step: number,
): { readonly value: number; readonly label: string } {
  if (step <= 0) return { value: 0, label: phase === 'eval' ? 'eval before RL' : `RL (${phase})` };
  return { value: step - 1, label: `RL (${phase})` };
}

export interface ProgressOptions {
  readonly runName: string;
  readonly quiet?: boolean;
  /** Machine-readable: one JSON object per step on stdout, nothing else. */
  readonly json?: boolean;
  readonly stream?: NodeJS.WriteStream;
  /** Plain lines even on a terminal: runs side by side cannot share one set of bars. */
  readonly plain?: boolean;
}

/** Progress bars with ETA on a terminal; plain lines otherwise; nothing with --quiet; JSON with --json. */
export function progressEvents(options: ProgressOptions): RunEvents & { stop(): void } {
  const stream = options.stream ?? process.stderr;
  if (options.json === true) {
    return {
      step: (row) => process.stdout.write(`${JSON.stringify({ run: options.runName, ...row })}\n`),
      stop() {},
    };
  }
  if (options.quiet === true) return { stop() {} };
  const say = (line: string) => stream.write(`${line}\n`);
  if (!stream.isTTY || options.plain === true) {
    let lastWarm = 0;
    return {
      log: (line) => say(`[${options.runName}] ${line}`),
      warmStart: ({ step, steps, loss }) => {
        if (step === steps || step - lastWarm >= Math.max(1, Math.floor(steps / 5))) {
          lastWarm = step;
          say(`[${options.runName}] warm start ${step}/${steps} cross-entropy ${loss.toFixed(3)}`);
        }
      },
      step: (row, steps) => say(stepLine(options.runName, row, steps)),
      stop() {},
    };
  }
  const bars = new cliProgress.MultiBar(
    {
      stream,
      format: `${options.runName} {phase} |{bar}| {value}/{total} ETA {eta_formatted} {detail}`,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  let warmBar: cliProgress.SingleBar | undefined;
  let stepBar: cliProgress.SingleBar | undefined;
  return {
    log: (line) => bars.log(`[${options.runName}] ${line}\n`),
    warmStart: ({ step, steps, loss }) => {
      warmBar ??= bars.create(steps, 0, { phase: 'warm start', detail: '' });
      warmBar.update(step, { detail: `cross-entropy ${loss.toFixed(3)}` });
      if (step === steps) {
        bars.remove(warmBar);
        warmBar = undefined;
      }
    },
    phase: (phase, step, steps) => {
      const { value, label } = phaseBar(phase, step);
      stepBar ??= bars.create(steps, value, { phase: label, detail: '' });
      stepBar.update(value, { phase: label });
    },
    step: (row, steps) => {
      stepBar?.update(row.step, {
        detail: `reward ${fixed(row.rewardMean, 3)} KL ${scientific(row.klFree)}`,
      });
      if (row.evalAccuracy !== undefined || row.step === steps)
        bars.log(`${stepLine(options.runName, row, steps)}\n`);
    },
    stop: () => bars.stop(),
  };
}
