import { describe, expect, it } from 'vitest';
import { phaseBar, progressEvents } from './progress-events.js';

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
