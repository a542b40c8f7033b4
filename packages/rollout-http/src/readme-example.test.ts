import { createOnnxRolloutEngine } from '@moerl/backend-onnx';
import { DEFAULT_SAMPLING_PARAMS } from '@moerl/core';
import { createRandomWeights, tinyMoeConfig } from '@moerl/testkit';
import { expect, it } from 'vitest';
import { createHttpRolloutEngine, createSglangServer } from './index.js';

// The README example, through the public API only.
it('README example: a GRPO group over two servers, prompt routing transferred once', async () => {
  const config = tinyMoeConfig;
  const backends = await Promise.all(
    [0, 1].map(() => createOnnxRolloutEngine({ config, weights: createRandomWeights(config, 0) })),
  );
  const servers = await Promise.all(backends.map((engine) => createSglangServer({ engine })));

  const engine = createHttpRolloutEngine({ servers: servers.map((server) => server.url), config });
  const promptIds = Int32Array.of(5, 17, 3, 9);
  const group = await engine.generate(
    Array.from({ length: 4 }, (_, index) => ({ id: `s${index}`, groupId: 'q0', promptIds })),
    { ...DEFAULT_SAMPLING_PARAMS, maxNewTokens: 6, seed: 1 },
  );
  expect(group.map((trajectory) => trajectory.reusedRoutingRows)).toEqual([0, 4, 4, 4]);
  for (const trajectory of group) {
    expect(trajectory.routing?.positions).toBe(4 + trajectory.responseIds.length - 1);
  }
  await engine.dispose();
  for (const server of servers) await server.close();
  for (const backend of backends) await backend.dispose();
});
