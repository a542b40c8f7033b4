// The one-line opt-in: `import '@moerl/backend-tfjs/register'` registers the tfjs trainer backends.
import { registerTfjsBackend } from './backend.js';

registerTfjsBackend();
