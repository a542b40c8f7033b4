import { concatRoutingRecords, createRoutingRecord } from '@moerl/core';
import { createRouterCache } from '@moerl/router-cache';

// The engine's KV entry for one position: anything with a byte size.
interface KvEntry {
  readonly bytes: number;
  readonly position: number;
}

const model = { moeLayers: 2, topK: 2, numExperts: 8 };
const freed: KvEntry[] = [];
const cache = createRouterCache<KvEntry>({
  ...model,
  budgetBytes: 1 << 20,
  onEvict: (handles) => freed.push(...handles),
});

// Stand-in for a forward pass: KV and routing of positions [from, tokens.length).
function forward(tokens: number[], from: number) {
  const kv = tokens.slice(from).map((_, index) => ({ bytes: 512, position: from + index }));
  const ids = kv.flatMap(({ position }) =>
    [0, 1].flatMap((layer) => [(position + layer) % 8, (position + layer + 1) % 8]),
  );
  return { kv, routing: createRoutingRecord({ ...model, positions: kv.length }, ids) };
}

const prompt = [101, 7, 42, 9, 13];
let created = 0;
for (let sample = 0; sample < 4; sample++) {
  // Keep the last prompt token out of the match: its logits are needed to sample, so it is always fed.
  const hit = cache.match(prompt.slice(0, -1));
  const response = [sample, sample + 1, 2];
  const sequence = [...prompt, ...response];
  // Prefill only the uncached suffix; the final sampled token is never fed, so it has no KV or routing.
  const fed = sequence.slice(0, -1);
  const computed = forward(fed, hit.length);
  created += computed.kv.length;
  // The trajectory's routing: cached rows of the prefix, then the rows computed now.
  const routing = concatRoutingRecords([hit.routing, computed.routing]);
  const { unusedKv } = cache.insert(fed, [...hit.kv, ...computed.kv], routing);
  freed.push(...unusedKv); // entries the cache already held under another handle
  hit.release();
  console.log(
    `sample ${sample}: ${hit.length} prompt tokens from the cache, routing of ${routing.positions} positions`,
  );
}

cache.setWeightVersion(1); // after a policy update nothing computed under the old weights is reused
const stats = cache.stats();
console.log(`hit rate ${stats.hitRate.toFixed(2)}; ${freed.length} of ${created} KV entries freed`);
