// The plugin entry: importing `@moerl/example-custom-backend/register` registers the `plain-ts` trainer
// backend with the process-wide registry (what a trainer's `plugins: [...]` list does). The main entry
// has no side effects; this one exists for exactly this one.
import { registerPlainTsBackend } from './backend.js';

registerPlainTsBackend();
