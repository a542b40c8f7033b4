export { createProgram } from './cli/main.js';
export { type ConfigField, configDocsMarkdown, configFields } from './config/config-docs.js';
export { listPresets, PRESETS } from './config/presets.js';
export {
  deepMerge,
  parseOverride,
  type ResolveRunConfigOptions,
  readConfigFile,
  resolveRunConfig,
  validateRunConfig,
} from './config/resolve-run-config.js';
export { type RunConfig, type RunConfigInput, runConfigSchema } from './config/run-config-schema.js';
export type { RunRecord, StepMetrics } from './metrics/step-metrics.js';
export { renderHtmlReport, writeHtmlReport } from './report/html-report.js';
export { type RunSummary, summarizeRun } from './report/run-summary.js';
export { registerDefaultBackends, resolveRunBackends } from './run/backends.js';
export { type CompareRunsOptions, type CompareRunsResult, compareRuns } from './run/compare-runs.js';
export { type EvaluateRunResult, evaluateRun } from './run/evaluate-run.js';
export { type RunPaths, readMetrics, runPaths } from './run/run-directory.js';
export type { RunEvents } from './run/run-events.js';
export { type TrainRunOptions, type TrainRunResult, trainRun } from './run/train-run.js';
export {
  type ServedOnnxEngine,
  type ServeOnnxEngineOptions,
  serveOnnxEngine,
} from './serve/serve-onnx-engine.js';
export { exactReward, extractNumericAnswer, numericReward, regexReward } from './tasks/answer-rewards.js';
export { createAdditionTask, createReverseTask, createSortDigitsTask } from './tasks/builtin-tasks.js';
export { createCharTokenizer, SPECIAL_TOKENS, type Tokenizer } from './tasks/char-tokenizer.js';
export type { Environment, EnvironmentTurn } from './tasks/environment.js';
export {
  type ChatMessage,
  createHfTokenizer,
  type HfTokenizer,
  loadHfTokenizer,
} from './tasks/hf-tokenizer.js';
export { type JsonlTaskOptions, loadJsonlTask } from './tasks/jsonl-task.js';
export { sampleTrainingExamples } from './tasks/prompt-sampler.js';
export { type AnswerReward, listRewards, registerReward } from './tasks/reward-registry.js';
export {
  defineTask,
  type ScoreOptions,
  type Task,
  type TaskDefinition,
  type TaskExample,
  type TaskScore,
} from './tasks/task.js';
export {
  createEvalSet,
  createTask,
  listTasks,
  registerTask,
  type TaskFactory,
} from './tasks/task-registry.js';
export { wordProblems } from './tasks/word-problems.js';
