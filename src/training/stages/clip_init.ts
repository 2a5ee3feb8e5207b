// CLIP's parameter initialization as transformers' CLIPPreTrainedModel._init_weights does it (factor 1,
// initializer_range 0.02): token/position/patch embeddings N(0, 0.02²), the class embedding N(0, 1/D),
// attention q/k/v and fc2 N(0, (D^-½ · (2L)^-½)²), out_proj N(0, 1/D), fc1 N(0, 1/(2D)), projections N(0, 1/D),
// linear biases 0, layer norms (1, 0), logit_scale = logit_scale_init_value.
import { numel } from '../../engine/ir.js';
import { Generator } from '../../engine/random.js';
import type { StateDict } from '../../nn/module.js';
import type { ClipModelRoot } from '../../models/clip/clip_model.js';
import type { ClipEncoderConfig } from '../../models/clip/config.js';
import { KinemaError } from '../../errors.js';

const INITIALIZER_RANGE = 0.02;

/** The standard deviation (0 = zeros, null = the declared ones/zeros) of parameter `name`. */
function initStd(name: string, tower: ClipEncoderConfig): number | null {
  const d = tower.hiddenSize;
  const inProj = d ** -0.5 * (2 * tower.numHiddenLayers) ** -0.5;
  const rules: Array<[RegExp, number | null]> = [
    [/\.(token_embedding|position_embedding|patch_embedding)\.weight$/, INITIALIZER_RANGE],
    [/\.class_embedding$/, d ** -0.5],
    [/\.self_attn\.[qkv]_proj\.weight$/, inProj],
    [/\.self_attn\.out_proj\.weight$/, d ** -0.5],
    [/\.mlp\.fc1\.weight$/, (2 * d) ** -0.5],
    [/\.mlp\.fc2\.weight$/, inProj],
    [/\.(self_attn\.[qkvo]\w*_proj|mlp\.fc[12])\.bias$/, 0],
    [/(layer_norm\d|layrnorm|layernorm|final_layer_norm)\.(weight|bias)$/, null],
  ];
  for (const [pattern, std] of rules) if (pattern.test(name)) return std;
  throw new KinemaError('TRAIN_BAD_SETTINGS', `CLIP init: no initialization rule for parameter '${name}'`);
}

/** Fresh CLIPModel parameters (seeded), initialized like transformers. */
export function clipInitParameters(model: ClipModelRoot, seed: number): StateDict {
  const declared = model.namedParameters();
  const rng = new Generator(seed);
  const { textConfig, visionConfig, logitScaleInitValue } = model.config;
  const sd: StateDict = new Map();
  for (const [name, spec] of declared) {
    const n = numel(spec.shape);
    if (name === 'logit_scale') {
      sd.set(name, new Float32Array(n).fill(logitScaleInitValue));
      continue;
    }
    if (name === 'text_projection.weight' || name === 'visual_projection.weight') {
      const d = name.startsWith('text') ? textConfig.hiddenSize : visionConfig.hiddenSize;
      sd.set(name, scaledNormal(rng, n, d ** -0.5));
      continue;
    }
    const tower = name.startsWith('text_model.') ? textConfig : visionConfig;
    const std = initStd(name, tower);
    if (std === null) sd.set(name, new Float32Array(n).fill(spec.init.kind === 'ones' ? 1 : 0));
    else sd.set(name, std === 0 ? new Float32Array(n) : scaledNormal(rng, n, std));
  }
  return sd;
}

function scaledNormal(rng: Generator, n: number, std: number): Float32Array {
  const v = rng.normal(n);
  for (let i = 0; i < n; i++) v[i]! *= std;
  return v;
}
