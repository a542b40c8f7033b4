import { KL_ESTIMATORS } from '@moerl/algos';
import { z } from 'zod';

/**
 * The whole configuration of a run. Every field has a default and a description; `moerl config --docs`
 * prints them (generated from this schema, so docs and validation cannot drift apart).
 */
const taskSchema = z
  .strictObject({
    name: z
      .string()
      .default('addition')
      .describe('Task name from the task registry (addition, sort-digits, reverse, or a plugin task).'),
    formatReward: z.number().min(0).max(1).default(0.1).describe('Reward of a well-formed but wrong answer.'),
    dataset: z
      .strictObject({
        path: z
          .string()
          .min(1)
          .describe(
            'JSONL file (relative to the working directory): one {"prompt": …, "answer": …} or {"messages": [{role, content}, …], "answer": …} a line.',
          ),
        evalPath: z
          .string()
          .min(1)
          .optional()
          .describe(
            'Held-out problems in their own file (default: eval.size problems of path, never trained on).',
          ),
        reward: z
          .string()
          .min(1)
          .default('exact')
          .describe(
            'exact (trimmed match), numeric (GSM8K ####, \\boxed{}, else the last number), regex, or the name of a reward a plugin added with registerReward (graded values in [0, 1] allowed).',
          ),
        pattern: z.string().optional().describe('For reward regex: a capture group must equal the answer.'),
        tokenizer: z
          .string()
          .optional()
          .describe(
            'A Hugging Face model directory with tokenizer.json and tokenizer_config.json (its chat template renders prompts); default a character tokenizer over the dataset.',
          ),
        maxAnswerTokens: z
          .number()
          .int()
          .positive()
          .optional()
          .describe('Longest response in tokens (default: the longest reference answer).'),
      })
      .optional()
      .describe('Train on a JSONL dataset (task name "jsonl") instead of the registered task `name`.'),
  })
  .prefault({});

const modelSchema = z
  .strictObject({
    hiddenSize: z.number().int().positive().default(32).describe('Hidden size of the MoE transformer.'),
    numLayers: z.number().int().positive().default(3).describe('Decoder layers.'),
    numAttentionHeads: z.number().int().positive().default(4).describe('Attention heads.'),
    numKeyValueHeads: z
      .number()
      .int()
      .positive()
      .default(2)
      .describe('Key/value heads (grouped-query attention).'),
    numExperts: z.number().int().positive().default(8).describe('Experts per MoE layer.'),
    topK: z.number().int().positive().default(2).describe('Experts each token is routed to.'),
    moeIntermediateSize: z
      .number()
      .int()
      .positive()
      .default(32)
      .describe('Width of each expert’s SwiGLU FFN.'),
    intermediateSize: z
      .number()
      .int()
      .positive()
      .default(64)
      .describe('Width of the dense FFN of non-MoE layers.'),
    mlpOnlyLayers: z
      .array(z.number().int().nonnegative())
      .default([0])
      .describe('Layers with a dense FFN instead of experts.'),
    normTopKProb: z.boolean().default(true).describe('Renormalise the top-k router probabilities.'),
    path: z
      .string()
      .min(1)
      .optional()
      .describe(
        'A Hugging Face Qwen3-MoE directory (config.json, and model.safetensors or its shards with model.safetensors.index.json): the run starts from these weights and takes the architecture from config.json, so the size fields above are ignored. Its vocabulary must hold the task tokenizer’s (task.dataset.tokenizer pointing at the same directory).',
      ),
    initSeed: z
      .number()
      .int()
      .optional()
      .describe('Seed of the random initial weights (default: the run seed).'),
  })
  .prefault({});

const warmStartSchema = z
  .strictObject({
    steps: z
      .number()
      .int()
      .nonnegative()
      .default(150)
      .describe('Supervised steps on reference answers before RL (0 disables).'),
    batchSize: z.number().int().positive().default(32).describe('Examples per supervised step.'),
    learningRate: z.number().positive().default(3e-3).describe('Learning rate of the warm start.'),
  })
  .prefault({});

const rolloutSchema = z
  .strictObject({
    promptsPerStep: z.number().int().positive().default(8).describe('Prompts sampled per RL step.'),
    groupSize: z.number().int().positive().default(8).describe('Samples per prompt (G).'),
    temperature: z.number().min(0).default(1).describe('Sampling temperature (0 = greedy).'),
    topP: z.number().gt(0).max(1).default(1).describe('Nucleus sampling mass.'),
    topK: z.number().int().nonnegative().default(0).describe('Top-k sampling (0 disables).'),
    maxNewTokens: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('Response length limit (default: the task’s longest answer + 2).'),
    precision: z
      .enum(['fp32', 'bf16', 'fp16', 'fp8'])
      .default('bf16')
      .describe(
        'Inference precision of the rollout engine against the fp32 trainer: bf16 (weights rounded), fp16 (weights and matrix products), fp8 (projection weights in FP8 E4M3 with FP32 scales, the rest bf16; see rollout.fp8), fp32 (no mismatch: a control).',
      ),
    activations: z
      .enum(['fp32', 'bf16'])
      .default('fp32')
      .describe(
        'How the in-process onnx engine stores activations: fp32, or bf16 as Hugging Face’s eager model in torch.bfloat16 rounds them (Linear outputs, residual stream, norms, attention, experts; router softmax and top-k in float32). bf16 needs rollout.precision bf16 or fp8.',
      ),
    fp8: z
      .strictObject({
        scheme: z
          .enum(['block', 'channel', 'tensor'])
          .default('block')
          .describe(
            'FP8 scale groups: 128×128 blocks (DeepSeek/Qwen3-FP8), per output channel, or per tensor.',
          ),
        blockSize: z.number().int().positive().default(128).describe('Tile side of the block scheme.'),
        quantizeRouterGate: z
          .boolean()
          .default(false)
          .describe('Quantise the MoE router gate too (FP8 checkpoints keep it in bf16; on raises flips).'),
        ignore: z
          .array(z.string())
          .default([])
          .describe('Modules kept out of FP8 (vLLM’s ignore), e.g. model.layers.0.self_attn.'),
      })
      .prefault({})
      .describe('Settings of rollout.precision fp8.'),
    prefixCache: z.boolean().default(true).describe('Reuse KV and routing of shared prefixes in the engine.'),
    async: z
      .number()
      .int()
      .min(0)
      .max(1)
      .default(0)
      .describe(
        'Rollouts sampled ahead of training: 0 (synchronous: each step samples with the weights it trains), or 1 (one step off-policy, as AReaL and slime run it: while the trainer trains step N the engine samples step N+1 with the weights of step N − 1; the engine takes new weights between batches). R3 replays the routing the engine recorded with its version; rolloutStaleness reports the lag. Checkpoints keep the policy the next batch is sampled with, so a resumed run continues exactly. The overlap needs rollout.worker (alone, or with rollout.servers): tfjs holds the trainer’s JavaScript thread while it trains, and only a worker, which runs engine calls in the order made, can start the next batch right after the weight update without that thread; with servers and no worker the next batch waits for the step’s training to end. It saves at most the shorter phase of a step (see the trainer README).',
      ),
    threads: z
      .number()
      .int()
      .positive()
      .optional()
      .describe(
        'Intra-op threads of the in-process onnx engine (default: onnxruntime’s, one per core). 1 leaves the other core to the trainer while rollout.worker overlaps them.',
      ),
    worker: z
      .boolean()
      .default(false)
      .describe(
        'Run the engine in a worker thread: the in-process engine’s decode loop then runs beside training instead of waiting for the trainer’s JavaScript thread, which is what lets rollout.async 1 overlap the two without a server; with rollout.servers, the HTTP client (requests, JSON and routing decoding, policy checkpoints) runs there instead. Same trajectories as in the main thread; weights cross as copies.',
      ),
    servers: z
      .array(z.url({ protocol: /^https?$/ }))
      .default([])
      .describe(
        'Base URLs of rollout servers (`moerl serve`, or SGLang started with --enable-return-routed-experts) sharing a filesystem with the trainer; empty: the in-process engine. Each policy reaches them as a checkpoint under <run>/rollout-weights loaded through /update_weights_from_disk (vLLM has no such endpoint). rollout.precision is then the servers’ own.',
      ),
    protocol: z
      .enum(['sglang', 'vllm'])
      .default('sglang')
      .describe(
        'What the rollout servers speak: SGLang /generate or vLLM /v1/completions (moerl serve speaks both).',
      ),
    compactRouting: z
      .boolean()
      .default(false)
      .describe('Ask SGLang-protocol servers for uint8/uint16 routing (a moerl serve extension).'),
  })
  .prefault({});

const algorithmSchema = z
  .strictObject({
    objective: z
      .string()
      .default('grpo')
      .describe(
        'Objective name from the @moerl/algos registry (grpo, ppo-clip, dapo, dr-grpo, gspo, gspo-token, cispo, sapo, icepop, or a plugin’s).',
      ),
    advantage: z
      .enum(['grpo', 'dr-grpo', 'rloo', 'reinforce++'])
      .default('grpo')
      .describe('Advantage estimator.'),
    clipRatioLow: z.number().positive().optional().describe('ε_low (default: the objective’s).'),
    clipRatioHigh: z.number().positive().optional().describe('ε_high (default: the objective’s).'),
    lossAggMode: z
      .enum(['token-mean', 'seq-mean-token-sum', 'seq-mean-token-mean', 'seq-mean-token-sum-norm'])
      .optional()
      .describe('Loss aggregation (default: the objective’s).'),
    klCoefficient: z
      .number()
      .nonnegative()
      .default(0)
      .describe('Coefficient of a KL loss against the warm-started reference policy (0 disables).'),
    klEstimator: z
      .enum(KL_ESTIMATORS)
      .default('k3')
      .describe(
        'KL estimator of the KL loss: k1, k2, k3 (low_var_kl: k3 with verl’s clamps), abs; a trailing + keeps the value with k2’s gradient (verl’s straight-through forms).',
      ),
    importanceSampling: z
      .enum(['none', 'truncate', 'mask'])
      .default('none')
      .describe(
        'Train–inference correction with engine logprobs: truncated (TIS) or masked (MIS) importance sampling.',
      ),
    importanceSamplingThreshold: z.number().gt(1).default(2).describe('Cap C of the importance weight.'),
    dropUniformGroups: z
      .boolean()
      .default(false)
      .describe('DAPO dynamic sampling: leave out groups whose rewards are all equal.'),
  })
  .prefault({});

const trainSchema = z
  .strictObject({
    steps: z.number().int().nonnegative().default(30).describe('RL steps.'),
    learningRate: z.number().positive().default(1e-3).describe('Peak learning rate of the RL phase.'),
    schedule: z
      .enum(['constant', 'cosine'])
      .default('constant')
      .describe('Learning-rate schedule (cosine decays to 10% after the warmup).'),
    warmupSteps: z
      .number()
      .int()
      .nonnegative()
      .default(0)
      .describe('Linear warmup steps of the cosine schedule.'),
    weightDecay: z.number().nonnegative().default(0).describe('AdamW weight decay.'),
    maxGradNorm: z.number().nonnegative().default(1).describe('Global gradient-norm clip (0 disables).'),
    routerAuxLossCoefficient: z
      .number()
      .nonnegative()
      .default(0.001)
      .describe(
        'Coefficient of the MoE load-balancing loss (Hugging Face’s load_balancing_loss_func; Qwen3-MoE’s router_aux_loss_coef is 0.001), in the warm start and RL; 0 disables.',
      ),
    miniBatches: z
      .number()
      .int()
      .positive()
      .default(2)
      .describe('Optimizer steps per RL step (the rollout batch is split into this many).'),
    microBatchSize: z
      .number()
      .int()
      .positive()
      .optional()
      .describe(
        'Sequences per trainer pass, gradients accumulated over passes (verl’s micro-batch): bounds the logits held at once, e.g. with a large vocabulary. Default: a whole mini-batch at once.',
      ),
    epochs: z.number().int().positive().default(1).describe('Passes over the rollout batch per RL step.'),
    frozen: z
      .boolean()
      .default(false)
      .describe(
        'Sample, score and measure every step without updating the policy: the control that tells learning from prompt luck (same prompts as the other runs of a seed).',
      ),
  })
  .prefault({});

export const runConfigSchema = z
  .strictObject({
    $schema: z
      .string()
      .optional()
      .describe(
        'Where an editor finds this file’s JSON Schema (`moerl config --json-schema > moerl.schema.json`); ignored by runs.',
      ),
    name: z.string().min(1).default('run').describe('Run name (used in reports).'),
    seed: z.number().int().default(0).describe('Seed of everything random in the run.'),
    replay: z
      .enum(['free', 'R2', 'R3'])
      .default('free')
      .describe(
        'Routing replay: free (none), R2 (trainer’s own old-logprob routing), R3 (the engine’s rollout routing).',
      ),
    task: taskSchema,
    model: modelSchema,
    warmStart: warmStartSchema,
    rollout: rolloutSchema,
    algorithm: algorithmSchema,
    train: trainSchema,
    eval: z
      .strictObject({
        every: z
          .number()
          .int()
          .nonnegative()
          .default(5)
          .describe('Evaluate on the held-out set every N steps (0: only at the end).'),
        size: z.number().int().positive().default(64).describe('Problems in the held-out evaluation set.'),
      })
      .prefault({}),
    log: z
      .strictObject({
        samples: z
          .number()
          .int()
          .nonnegative()
          .default(2)
          .describe(
            'Rollouts per RL step written as text to samples.jsonl (the first sample of the first N prompts, decoded by the task’s tokenizer whatever engine sampled them); 0: none.',
          ),
      })
      .prefault({}),
    checkpoint: z
      .strictObject({
        every: z
          .number()
          .int()
          .nonnegative()
          .default(10)
          .describe('Checkpoint every N steps (0: only at the end).'),
      })
      .prefault({}),
    backends: z
      .strictObject({
        trainer: z.string().default('auto').describe('Trainer backend name, or auto (best registered).'),
        engine: z.string().default('auto').describe('Rollout backend name, or auto (best registered).'),
      })
      .prefault({}),
    plugins: z
      .array(z.string())
      .default([])
      .describe(
        'Modules imported before the run, e.g. packages that register objectives or tasks. Paths and package names resolve from the config file’s directory (the working directory for --set).',
      ),
  })
  // Checked with the rest, so a study refuses a bad arm before its first run rather than in the middle.
  .superRefine((config, context) => {
    const { activations, precision, servers } = config.rollout;
    if (activations === 'bf16' && servers.length === 0 && precision !== 'bf16' && precision !== 'fp8') {
      context.addIssue({
        code: 'custom',
        path: ['rollout', 'activations'],
        message: `bf16 activations need rollout.precision bf16 or fp8, found ${precision}`,
        input: activations,
      });
    }
  });

export type RunConfig = z.output<typeof runConfigSchema>;
export type RunConfigInput = z.input<typeof runConfigSchema>;
