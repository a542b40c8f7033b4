// The one-line opt-in: `import '@moerl/backend-onnx/register'` registers the onnx rollout backend.
import { registerOnnxBackend } from './register-onnx-backend.js';

registerOnnxBackend();
