import { join } from 'node:path';
import { runRoutingSummary } from './routing-summary.js';

const percent = (value: number) => `${(value * 100).toFixed(1)}%`;
const directory = join(process.cwd(), '.tmp', 'demo-checkpoint');

console.log('moerl routing summary: a tiny MoE, a bf16 rollout engine and an fp32 trainer\n');
const summary = await runRoutingSummary({ directory, log: (line) => console.log(`  ${line}`) });

console.log(
  `\nRoutingRecord: ${summary.routedPositions} routed positions, ${summary.routingBytes} bytes (one byte per expert choice)`,
);
console.log('expert load per MoE layer (choices per expert):');
for (const [layer, load] of summary.expertLoad.entries()) console.log(`  layer ${layer}: ${load.join(' ')}`);

console.log('\nbf16 engine vs fp32 trainer, same tokens:');
console.log(
  `  expert choices that differ, per MoE layer: ${summary.disagreementPerLayer.map(percent).join(', ')}`,
);
console.log(
  `  tokens routed differently in at least one layer: ${percent(summary.positionsWithAnyDifference)}`,
);
console.log('\n|engine logprob − trainer logprob| over the sampled tokens:');
console.log(
  `  trainer routes freely         mean ${summary.meanGapFree.toExponential(2)}  max ${summary.maxGapFree.toExponential(2)}`,
);
console.log(
  `  trainer replays engine (R3)   mean ${summary.meanGapReplay.toExponential(2)}  max ${summary.maxGapReplay.toExponential(2)}`,
);
console.log(`  replay shrinks the mean gap ${(summary.meanGapFree / summary.meanGapReplay).toFixed(1)}×`);
