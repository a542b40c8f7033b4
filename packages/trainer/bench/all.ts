// `pnpm bench` in @moerl/trainer: each benchmark of this package in turn (each reads --quick itself).
await import('./generation-speed.js');
await import('./async-step.js');
await import('./multi-turn-cache.js');
await import('./multi-turn-http.js');
