import { isMoeLayer, type ModelConfig } from './model-config.js';

export interface WeightSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

/**
 * Every weight a checkpoint of `config` holds, with its shape, in Hugging Face Qwen3-MoE naming
 * (`nn.Linear` weights are `[out, in]`). Both backends and the reference load checkpoints by these names.
 */
export function expectedWeights(config: ModelConfig): WeightSpec[] {
  const hidden = config.hiddenSize;
  const queryWidth = config.numAttentionHeads * config.headDim;
  const keyValueWidth = config.numKeyValueHeads * config.headDim;
  const weights: WeightSpec[] = [{ name: 'model.embed_tokens.weight', shape: [config.vocabSize, hidden] }];
  const add = (name: string, shape: number[]) => weights.push({ name, shape });

  for (let layer = 0; layer < config.numLayers; layer++) {
    const prefix = `model.layers.${layer}`;
    add(`${prefix}.input_layernorm.weight`, [hidden]);
    add(`${prefix}.self_attn.q_proj.weight`, [queryWidth, hidden]);
    add(`${prefix}.self_attn.k_proj.weight`, [keyValueWidth, hidden]);
    add(`${prefix}.self_attn.v_proj.weight`, [keyValueWidth, hidden]);
    add(`${prefix}.self_attn.o_proj.weight`, [hidden, queryWidth]);
    if (config.attentionBias) {
      add(`${prefix}.self_attn.q_proj.bias`, [queryWidth]);
      add(`${prefix}.self_attn.k_proj.bias`, [keyValueWidth]);
      add(`${prefix}.self_attn.v_proj.bias`, [keyValueWidth]);
      add(`${prefix}.self_attn.o_proj.bias`, [hidden]);
    }
    if (config.qkNorm) {
      add(`${prefix}.self_attn.q_norm.weight`, [config.headDim]);
      add(`${prefix}.self_attn.k_norm.weight`, [config.headDim]);
    }
    add(`${prefix}.post_attention_layernorm.weight`, [hidden]);
    if (isMoeLayer(config, layer)) {
      const width = config.moeIntermediateSize;
      add(`${prefix}.mlp.gate.weight`, [config.numExperts, hidden]);
      for (let expert = 0; expert < config.numExperts; expert++) {
        add(`${prefix}.mlp.experts.${expert}.gate_proj.weight`, [width, hidden]);
        add(`${prefix}.mlp.experts.${expert}.up_proj.weight`, [width, hidden]);
        add(`${prefix}.mlp.experts.${expert}.down_proj.weight`, [hidden, width]);
      }
    } else {
      const width = config.intermediateSize;
      add(`${prefix}.mlp.gate_proj.weight`, [width, hidden]);
      add(`${prefix}.mlp.up_proj.weight`, [width, hidden]);
      add(`${prefix}.mlp.down_proj.weight`, [hidden, width]);
    }
  }
  add('model.norm.weight', [hidden]);
  if (!config.tieWordEmbeddings) add('lm_head.weight', [config.vocabSize, hidden]);
  return weights;
}
