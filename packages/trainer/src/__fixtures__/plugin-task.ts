import { createReverseTask } from '../tasks/builtin-tasks.js';
import { registerTask } from '../tasks/task-registry.js';

// What an outside task package does on import: register a task by name.
registerTask('test-plugin-task', () => createReverseTask(), { replace: true });
