import { describe, expect, it } from 'vitest';
import type { StepMetrics } from '../metrics/step-metrics.js';
import { phaseBar, progressEvents, stepLine } from './progress-events.js';

/** A terminal stand-in that keeps what cli-progress draws. */
function fakeTerminal() {
  let text = '';
  const stream = {
    isTTY: true,
    columns: 200,
    write: (chunk: string) => {
      text += chunk;
      return true;
    },
    cursorTo: () => true,
    moveCursor: () => true,
    clearLine: () => true,
    clearScreenDown: () => true,
    on: () => stream,
    removeListener: () => stream,
  };
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => text };
}

describe('progress bar', () => {
  it('labels the evaluation before RL, instead of showing step −1', () => {
    expect(phaseBar('eval', 0)).toEqual({ value: 0, label: 'eval before RL' });
    expect(phaseBar('rollout', 1)).toEqual({ value: 0, label: 'RL (rollout)' });
    expect(phaseBar('eval', 2)).toEqual({ value: 1, label: 'RL (eval)' });
  });

  it('draws 0/steps and the label on a terminal while the first evaluation runs', async () => {
    const terminal = fakeTerminal();
    const events = progressEvents({ runName: 'run', stream: terminal.stream });
    events.phase?.('eval', 0, 2);
    // cli-progress redraws on a timer: let it draw a few frames.
    await new Promise((resolve) => setTimeout(resolve, 400));
    events.stop();
    expect(terminal.text()).toContain('run eval before RL |');
    expect(terminal.text()).toContain('| 0/2 ETA');
    expect(terminal.text()).not.toContain('-1/2');
  });
});

describe('step line', () => {
  it('shows turns and cached rows for multi-turn tasks only', () => {
    const row = {
      step: 3,
      rewardMean: 0.5,
      accuracy: 0.5,
      klFree: 1e-3,
      klReplay: 5e-4,
      tokensWithRoutingDifference: 0.1,
      clipFraction: 0,
    } as StepMetrics;
    expect(stepLine('run', row, 10)).not.toContain('turns');
    expect(stepLine('run', { ...row, turnsPerEpisode: 1.75, routingRowsReused: 412 }, 10)).toContain(
      'turns 1.75 cached rows 412',
    );
    expect(
      stepLine(
        'run',
        { ...row, turnsPerEpisode: 1.75, toolCallsPerEpisode: 0.5, routingRowsReused: 412 },
        10,
      ),
    ).toContain('turns 1.75 tool calls 0.50 cached rows 412');
  });
});
