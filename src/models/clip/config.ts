// CLIP configurations as transformers' CLIPTextConfig / CLIPVisionConfig / CLIPConfig read them from
// config.json (snake_case keys at this boundary, camelCase inside). Missing keys take transformers' defaults;
// keys of the wrong type are errors naming the key.
import { ModelLoadError } from '../../io/model_folder.js';

/** Activations transformers' ACT2FN maps these names to (exact or tanh-approximated GELU, QuickGELU, …). */
export type ClipActivation =
  'gelu' | 'quick_gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'gelu_fast' | 'relu' | 'silu' | 'swish';

const ACTIVATIONS: readonly ClipActivation[] = [
  'gelu',
  'quick_gelu',
  'gelu_new',
  'gelu_pytorch_tanh',
  'gelu_fast',
  'relu',
  'silu',
  'swish',
];

/** The transformer encoder shared by both towers. */
export interface ClipEncoderConfig {
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  hiddenAct: ClipActivation;
  layerNormEps: number;
}

export interface ClipTextConfig extends ClipEncoderConfig {
  vocabSize: number;
  maxPositionEmbeddings: number;
  /** Used by CLIPTextModelWithProjection. */
  projectionDim: number;
  bosTokenId: number;
  eosTokenId: number;
  padTokenId: number;
  architectures: string[];
}

export interface ClipVisionConfig extends ClipEncoderConfig {
  numChannels: number;
  imageSize: number;
  patchSize: number;
  projectionDim: number;
  architectures: string[];
}

export interface ClipConfig {
  textConfig: ClipTextConfig;
  visionConfig: ClipVisionConfig;
  projectionDim: number;
  logitScaleInitValue: number;
}

class ConfigReader {
  constructor(
    private readonly raw: Record<string, unknown>,
    private readonly where: string,
  ) {}

  private fail(key: string, what: string): never {
    throw new ModelLoadError(`${this.where}: "${key}" ${what} (got ${JSON.stringify(this.raw[key])})`);
  }

  int(key: string, dflt: number, min = 1): number {
    const v = this.raw[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
      this.fail(key, `must be an integer ≥ ${min}`);
    return v;
  }

  num(key: string, dflt: number): number {
    const v = this.raw[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'must be a finite number');
    return v;
  }

  activation(key: string, dflt: ClipActivation): ClipActivation {
    const v = this.raw[key] ?? dflt;
    const found = ACTIVATIONS.find((a) => a === v);
    if (found === undefined) this.fail(key, `must be one of ${ACTIVATIONS.join(', ')}`);
    return found;
  }

  strings(key: string): string[] {
    const v = this.raw[key] ?? [];
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string'))
      this.fail(key, 'must be a list of strings');
    return [...(v as string[])];
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function encoderConfig(
  r: ConfigReader,
  d: { hidden: number; inter: number; layers: number; heads: number },
): ClipEncoderConfig {
  const cfg: ClipEncoderConfig = {
    hiddenSize: r.int('hidden_size', d.hidden),
    intermediateSize: r.int('intermediate_size', d.inter),
    numHiddenLayers: r.int('num_hidden_layers', d.layers),
    numAttentionHeads: r.int('num_attention_heads', d.heads),
    hiddenAct: r.activation('hidden_act', 'quick_gelu'),
    layerNormEps: r.num('layer_norm_eps', 1e-5),
  };
  if (cfg.hiddenSize % cfg.numAttentionHeads !== 0) {
    throw new ModelLoadError(
      `hidden_size ${cfg.hiddenSize} is not divisible by num_attention_heads ${cfg.numAttentionHeads}`,
    );
  }
  return cfg;
}

/** CLIPTextConfig from a config.json object (`where` names the file in errors). */
export function parseClipTextConfig(raw: Record<string, unknown>, where = 'text config'): ClipTextConfig {
  const r = new ConfigReader(raw, where);
  return {
    ...encoderConfig(r, { hidden: 512, inter: 2048, layers: 12, heads: 8 }),
    vocabSize: r.int('vocab_size', 49408),
    maxPositionEmbeddings: r.int('max_position_embeddings', 77),
    projectionDim: r.int('projection_dim', 512),
    bosTokenId: r.int('bos_token_id', 49406, 0),
    eosTokenId: r.int('eos_token_id', 49407, 0),
    padTokenId: r.int('pad_token_id', 1, 0),
    architectures: r.strings('architectures'),
  };
}

/** CLIPVisionConfig from a config.json object. */
export function parseClipVisionConfig(
  raw: Record<string, unknown>,
  where = 'vision config',
): ClipVisionConfig {
  const r = new ConfigReader(raw, where);
  const cfg: ClipVisionConfig = {
    ...encoderConfig(r, { hidden: 768, inter: 3072, layers: 12, heads: 12 }),
    numChannels: r.int('num_channels', 3),
    imageSize: r.int('image_size', 224),
    patchSize: r.int('patch_size', 32),
    projectionDim: r.int('projection_dim', 512),
    architectures: r.strings('architectures'),
  };
  if (cfg.imageSize % cfg.patchSize !== 0) {
    throw new ModelLoadError(
      `${where}: image_size ${cfg.imageSize} is not a multiple of patch_size ${cfg.patchSize}`,
    );
  }
  return cfg;
}

/** CLIPConfig (the dual-tower CLIPModel): `text_config` and `vision_config` sub-objects plus the projection. */
export function parseClipConfig(raw: Record<string, unknown>, where = 'CLIP config'): ClipConfig {
  const text = raw['text_config'] ?? {};
  const vision = raw['vision_config'] ?? {};
  if (!isRecord(text)) throw new ModelLoadError(`${where}: "text_config" must be an object`);
  if (!isRecord(vision)) throw new ModelLoadError(`${where}: "vision_config" must be an object`);
  const r = new ConfigReader(raw, where);
  return {
    textConfig: parseClipTextConfig(text, `${where} text_config`),
    visionConfig: parseClipVisionConfig(vision, `${where} vision_config`),
    projectionDim: r.int('projection_dim', 512),
    logitScaleInitValue: r.num('logit_scale_init_value', 2.6592),
  };
}
