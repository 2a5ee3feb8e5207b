// CLIP text tower (transformers `CLIPTextModel` / `CLIPTextModelWithProjection`) and the pre-norm transformer
// encoder both CLIP towers share. Parameter names are the checkpoint keys (`text_model.encoder.layers.0.
// self_attn.q_proj.weight`, …). The whole forward (ids → last hidden state, pooled output, optional hidden
// states) is one traced program, compiled once per input shape.
import type { Tensor } from '../../engine/tensor.js';
import type { HostTensor } from '../../engine/runtime.js';
import { hostTensor } from '../../engine/runtime.js';
import type { ExecutionProvider } from '../../engine/runtime.js';
import * as op from '../../engine/ops.js';
import { Embedding, LayerNorm, Linear } from '../../nn/layers.js';
import { Module, ModuleList, type StateDict } from '../../nn/module.js';
import { compileWithWeights, type CompiledFunction } from '../../nn/compile.js';
import { ModelLoadError, loadStateDict, readConfig, type WeightsVariant } from '../../io/model_folder.js';
import type { FileLoader } from '../../io/loader.js';
import {
  parseClipTextConfig,
  type ClipActivation,
  type ClipEncoderConfig,
  type ClipTextConfig,
} from './config.js';
import { KinemaError } from '../../errors.js';

/** torch.finfo(torch.float32).min: what transformers fills masked attention scores with. */
export const FLOAT32_MIN = -3.4028234663852886e38;

/** transformers' ACT2FN[name] applied to `x`. */
export function activation(x: Tensor, name: ClipActivation): Tensor {
  switch (name) {
    case 'gelu':
      return op.gelu(x, 'none');
    case 'quick_gelu':
      return op.quickGelu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
      return op.gelu(x, 'tanh');
    case 'relu':
      return op.relu(x);
    case 'silu':
    case 'swish':
      return op.silu(x);
  }
}

/** Multi-head self-attention with biased q/k/v/out projections (`self_attn.{q,k,v,out}_proj`). */
export class ClipAttention extends Module {
  readonly heads: number;
  readonly headDim: number;
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly outProj: Linear;
  constructor(hidden: number, heads: number) {
    super();
    this.heads = heads;
    this.headDim = hidden / heads;
    this.kProj = this.child('k_proj', new Linear(hidden, hidden));
    this.vProj = this.child('v_proj', new Linear(hidden, hidden));
    this.qProj = this.child('q_proj', new Linear(hidden, hidden));
    this.outProj = this.child('out_proj', new Linear(hidden, hidden));
  }

  /** x [B, L, D]; mask (additive, broadcastable to [B, heads, L, L]) or none. */
  forward(x: Tensor, mask?: Tensor): Tensor {
    const [b, l, d] = x.shape as [number, number, number];
    const heads = (t: Tensor, perm: number[]): Tensor =>
      op.transpose(op.reshape(t, [b, l, this.heads, this.headDim]), perm);
    // transformers scales the projected queries (bias included) before the product.
    const q = heads(op.mul(this.qProj.forward(x), this.headDim ** -0.5), [0, 2, 1, 3]);
    const kT = heads(this.kProj.forward(x), [0, 2, 3, 1]);
    const v = heads(this.vProj.forward(x), [0, 2, 1, 3]);
    let scores = op.matmul(q, kT);
    if (mask) scores = op.add(scores, mask);
    const o = op.matmul(op.softmax(scores, -1), v);
    return this.outProj.forward(op.reshape(op.transpose(o, [0, 2, 1, 3]), [b, l, d]));
  }
}

export class ClipMlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(
    hidden: number,
    intermediate: number,
    readonly act: ClipActivation,
  ) {
    super();
    this.fc1 = this.child('fc1', new Linear(hidden, intermediate));
    this.fc2 = this.child('fc2', new Linear(intermediate, hidden));
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(activation(this.fc1.forward(x), this.act));
  }
}

/** Pre-norm transformer block: x + attn(ln1(x)), then + mlp(ln2(·)). */
export class ClipEncoderLayer extends Module {
  readonly selfAttn: ClipAttention;
  readonly layerNorm1: LayerNorm;
  readonly mlp: ClipMlp;
  readonly layerNorm2: LayerNorm;
  constructor(cfg: ClipEncoderConfig) {
    super();
    this.selfAttn = this.child('self_attn', new ClipAttention(cfg.hiddenSize, cfg.numAttentionHeads));
    this.layerNorm1 = this.child('layer_norm1', new LayerNorm(cfg.hiddenSize, cfg.layerNormEps));
    this.mlp = this.child('mlp', new ClipMlp(cfg.hiddenSize, cfg.intermediateSize, cfg.hiddenAct));
    this.layerNorm2 = this.child('layer_norm2', new LayerNorm(cfg.hiddenSize, cfg.layerNormEps));
  }
  forward(x: Tensor, mask?: Tensor): Tensor {
    const h = op.add(x, this.selfAttn.forward(this.layerNorm1.forward(x), mask));
    return op.add(h, this.mlp.forward(this.layerNorm2.forward(h)));
  }
}

export interface EncoderOutput {
  last: Tensor;
  /** The encoder input followed by each layer's output (transformers' `hidden_states`). */
  hiddenStates: Tensor[];
}

export class ClipEncoder extends Module {
  readonly layers: ModuleList<ClipEncoderLayer>;
  constructor(cfg: ClipEncoderConfig) {
    super();
    const layers = Array.from({ length: cfg.numHiddenLayers }, () => new ClipEncoderLayer(cfg));
    this.layers = this.child('layers', new ModuleList(layers));
  }
  forward(x: Tensor, mask?: Tensor): EncoderOutput {
    const hiddenStates = [x];
    let h = x;
    for (const layer of this.layers.items) {
      h = layer.forward(h, mask);
      hiddenStates.push(h);
    }
    return { last: h, hiddenStates };
  }
}

export class ClipTextEmbeddings extends Module {
  readonly tokenEmbedding: Embedding;
  readonly positionEmbedding: Embedding;
  constructor(cfg: ClipTextConfig) {
    super();
    this.tokenEmbedding = this.child('token_embedding', new Embedding(cfg.vocabSize, cfg.hiddenSize));
    this.positionEmbedding = this.child(
      'position_embedding',
      new Embedding(cfg.maxPositionEmbeddings, cfg.hiddenSize),
    );
  }
  /** ids int64 [B, L] → [B, L, D] (positions 0..L-1). */
  forward(ids: Tensor): Tensor {
    const l = ids.shape[1]!;
    const positions = op.slice(this.positionEmbedding.table(), [0], [l], [0]);
    return op.add(this.tokenEmbedding.forward(ids), positions);
  }
}

/** Causal mask [1, 1, L, L]: 0 on and below the diagonal, float32 min above it. */
function causalMask(l: number): Tensor {
  const data = new Float32Array(l * l);
  for (let i = 0; i < l; i++) data.fill(FLOAT32_MIN, i * l + i + 1, (i + 1) * l);
  return op.constant(data, [1, 1, l, l]);
}

/** Row index chosen by the pooling rule, as a one-hot [B, 1, L] float32 selector. */
function poolingSelector(ids: Tensor, eosTokenId: number): Tensor {
  const [b, l] = ids.shape as [number, number];
  const positions = op.constant(
    Float32Array.from({ length: l }, (_, i) => i),
    [1, l],
  );
  let hit: Tensor;
  if (eosTokenId === 2) {
    // Legacy configs: the eos token is the largest id, so pool at argmax(input_ids) (first maximum).
    const idsF = op.cast(ids, 'float32');
    hit = op.equal(idsF, op.max(idsF, [1], true));
  } else {
    hit = op.equal(ids, op.constant([eosTokenId], [1], 'int64'));
  }
  // First hit: the smallest position among the hits (L when there is none, which argmax maps to 0).
  const first = op.neg(op.max(op.neg(op.where(hit, positions, l)), [1], true));
  const index = op.where(op.equal(first, l), 0, first);
  return op.reshape(op.cast(op.equal(positions, index), 'float32'), [b, 1, l]);
}

export interface TextForward {
  lastHiddenState: Tensor;
  pooledOutput: Tensor;
  hiddenStates: Tensor[];
}

/** transformers' CLIPTextTransformer (the `text_model.` sub-module). */
export class ClipTextTransformer extends Module {
  readonly embeddings: ClipTextEmbeddings;
  readonly encoder: ClipEncoder;
  readonly finalLayerNorm: LayerNorm;
  constructor(readonly config: ClipTextConfig) {
    super();
    this.embeddings = this.child('embeddings', new ClipTextEmbeddings(config));
    this.encoder = this.child('encoder', new ClipEncoder(config));
    this.finalLayerNorm = this.child(
      'final_layer_norm',
      new LayerNorm(config.hiddenSize, config.layerNormEps),
    );
  }

  /** ids int64 [B, L]; attentionMask [B, L] (1 = token, 0 = padding), int64 or float32. */
  forward(ids: Tensor, attentionMask?: Tensor): TextForward {
    const [b, l] = ids.shape as [number, number];
    if (l > this.config.maxPositionEmbeddings) {
      throw new KinemaError(
        'CLIP_BAD_INPUT',
        `CLIP text: sequence length ${l} exceeds max_position_embeddings ${this.config.maxPositionEmbeddings}`,
      );
    }
    let mask = causalMask(l);
    if (attentionMask) {
      const keep = op.equal(op.cast(attentionMask, 'float32'), 1);
      mask = op.add(mask, op.reshape(op.where(keep, op.scalar(0, 'float32'), FLOAT32_MIN), [b, 1, 1, l]));
    }
    const enc = this.encoder.forward(this.embeddings.forward(ids), mask);
    const lastHiddenState = this.finalLayerNorm.forward(enc.last);
    const selector = poolingSelector(ids, this.config.eosTokenId);
    const pooledOutput = op.reshape(op.matmul(selector, lastHiddenState), [b, this.config.hiddenSize]);
    return { lastHiddenState, pooledOutput, hiddenStates: enc.hiddenStates };
  }
}

/** Root module of a text checkpoint: `text_model.*`, plus `text_projection.weight` with projection. */
export class ClipTextRoot extends Module {
  readonly textModel: ClipTextTransformer;
  readonly textProjection: Linear | null;
  constructor(config: ClipTextConfig, withProjection: boolean) {
    super();
    this.textModel = this.child('text_model', new ClipTextTransformer(config));
    this.textProjection = withProjection
      ? this.child('text_projection', new Linear(config.hiddenSize, config.projectionDim, false))
      : null;
  }
}

/** A batch of token ids (or a mask) as int64 [B, L]: rows, or a flat array of `rows × seqLength`. */
export function idsTensor(
  ids: number[][] | BigInt64Array,
  seqLength: number,
  what = 'input ids',
): HostTensor {
  if (ids instanceof BigInt64Array) {
    if (ids.length === 0 || ids.length % seqLength !== 0) {
      throw new KinemaError(
        'CLIP_BAD_INPUT',
        `CLIP text: ${what} hold ${ids.length} values, not a whole number of rows of ${seqLength}`,
      );
    }
    return hostTensor(ids, [ids.length / seqLength, seqLength], 'int64');
  }
  if (ids.length === 0) throw new KinemaError('CLIP_BAD_INPUT', `CLIP text: ${what} are empty`);
  const l = ids[0]!.length;
  const data = new BigInt64Array(ids.length * l);
  ids.forEach((row, i) => {
    if (row.length !== l)
      throw new KinemaError(
        'CLIP_BAD_INPUT',
        `CLIP text: ${what} row ${i} has ${row.length} values, row 0 has ${l}`,
      );
    row.forEach((v, j) => {
      if (!Number.isSafeInteger(v))
        throw new KinemaError('CLIP_BAD_INPUT', `CLIP text: ${what} [${i}][${j}] = ${v} is not an integer`);
      data[i * l + j] = BigInt(v);
    });
  });
  return hostTensor(data, [ids.length, l], 'int64');
}

export function checkTokenIds(ids: HostTensor, vocabSize: number): void {
  const data = ids.data as BigInt64Array;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v < 0n || v >= BigInt(vocabSize)) {
      throw new KinemaError(
        'CLIP_BAD_INPUT',
        `CLIP text: token id ${v} at flat index ${i} is outside the vocabulary [0, ${vocabSize})`,
      );
    }
  }
}

export interface ClipLoadOptions {
  variant?: WeightsVariant | null;
  ep?: ExecutionProvider;
  threads?: number;
  /** Where the folder is read from (default: the platform's, i.e. the file system in Node). */
  loader?: FileLoader;
}

export interface TextModelOptions extends ClipLoadOptions {
  /** Build CLIPTextModelWithProjection (default: when config.architectures names it). */
  withProjection?: boolean;
}

export interface TextEncodeOptions {
  attentionMask?: number[][] | BigInt64Array;
  outputHiddenStates?: boolean;
}

export interface TextEncodeResult {
  lastHiddenState: HostTensor;
  pooledOutput: HostTensor;
  /** CLIPTextModelWithProjection only: text_projection(pooledOutput). */
  textEmbeds?: HostTensor;
  hiddenStates?: HostTensor[];
}

/** Drops buffers older checkpoints saved next to the parameters (`*.embeddings.position_ids`). */
export function dropBuffers(key: string): string | null {
  return key.endsWith('embeddings.position_ids') ? null : key;
}

/** Loads `dir`'s weights and checks them strictly against `root`'s declarations. */
export function loadWeightsFor(
  root: Module,
  dir: string,
  variant: WeightsVariant | null | undefined,
  loader?: FileLoader,
): StateDict {
  const loaded = loadStateDict(dir, {
    ...(variant !== undefined && { variant }),
    ...(loader && { loader }),
    keyMap: dropBuffers,
  });
  try {
    root.validateStateDict(loaded.stateDict, { shapes: loaded.shapes });
  } catch (err) {
    throw new ModelLoadError(`${dir}: ${(err as Error).message}`);
  }
  return loaded.stateDict;
}

/** Compiled programs of one model, keyed by input shape and requested outputs. */
export class ProgramCache {
  private readonly entries = new Map<string, Promise<CompiledFunction>>();
  get(key: string, build: () => Promise<CompiledFunction>): Promise<CompiledFunction> {
    let hit = this.entries.get(key);
    if (!hit) {
      hit = build();
      this.entries.set(key, hit);
      hit.catch(() => this.entries.delete(key));
    }
    return hit;
  }
}

/** transformers' CLIPTextModel (or CLIPTextModelWithProjection) running on Kinema's engine. */
export class CLIPTextModel {
  private readonly programs = new ProgramCache();

  constructor(
    readonly config: ClipTextConfig,
    readonly module: ClipTextRoot,
    readonly stateDict: StateDict,
    private readonly runOptions: { ep?: ExecutionProvider; threads?: number } = {},
  ) {
    module.validateStateDict(stateDict);
  }

  /** Loads a transformers text-encoder folder (config.json + model[.fp16].safetensors); loading is strict. */
  static async fromPretrained(dir: string, opts: TextModelOptions = {}): Promise<CLIPTextModel> {
    const config = parseClipTextConfig(readConfig(dir, opts.loader), `${dir}/config.json`);
    const withProjection =
      opts.withProjection ?? config.architectures.includes('CLIPTextModelWithProjection');
    const module = new ClipTextRoot(config, withProjection);
    const stateDict = loadWeightsFor(module, dir, opts.variant, opts.loader);
    return new CLIPTextModel(config, module, stateDict, {
      ...(opts.ep && { ep: opts.ep }),
      ...(opts.threads !== undefined && { threads: opts.threads }),
    });
  }

  /** The same model on other weights (e.g. with LoRA branches attached to `module`), same run options. */
  withStateDict(stateDict: StateDict): CLIPTextModel {
    return new CLIPTextModel(this.config, this.module, stateDict, this.runOptions);
  }

  get withProjection(): boolean {
    return this.module.textProjection !== null;
  }

  /** Runs the text tower on int64 ids [B, L] (L ≤ max_position_embeddings; number[][] rows or flat [B, 77]). */
  async encode(
    inputIds: number[][] | BigInt64Array,
    opts: TextEncodeOptions = {},
  ): Promise<TextEncodeResult> {
    const ids = idsTensor(inputIds, this.config.maxPositionEmbeddings);
    checkTokenIds(ids, this.config.vocabSize);
    const [b, l] = ids.shape as [number, number];
    const feeds: Record<string, HostTensor> = { input_ids: ids };
    if (opts.attentionMask) {
      const mask = idsTensor(opts.attentionMask, l, 'attention mask');
      if (mask.shape.join() !== ids.shape.join()) {
        throw new KinemaError(
          'CLIP_BAD_INPUT',
          `CLIP text: attention mask shape [${mask.shape}] differs from input ids [${ids.shape}]`,
        );
      }
      feeds['attention_mask'] = mask;
    }
    const hidden = opts.outputHiddenStates ?? false;
    const fn = await this.compiled(b, l, opts.attentionMask !== undefined, hidden);
    const out = await fn.exe.run(feeds);
    const result: TextEncodeResult = {
      lastHiddenState: out['last_hidden_state']!,
      pooledOutput: out['pooler_output']!,
    };
    if (this.withProjection) result.textEmbeds = out['text_embeds']!;
    if (hidden) {
      result.hiddenStates = Array.from(
        { length: this.config.numHiddenLayers + 1 },
        (_, i) => out[`hidden_states.${i}`]!,
      );
    }
    return result;
  }

  /** The traced forward for a [b, l] batch (exposed for tests and benchmarks). */
  forwardFn(masked: boolean, hidden: boolean): (...args: Tensor[]) => Record<string, Tensor> {
    return (ids: Tensor, mask?: Tensor) => {
      const r = this.module.textModel.forward(ids, masked ? mask : undefined);
      const out: Record<string, Tensor> = {
        last_hidden_state: r.lastHiddenState,
        pooler_output: r.pooledOutput,
      };
      if (this.module.textProjection) out['text_embeds'] = this.module.textProjection.forward(r.pooledOutput);
      if (hidden) r.hiddenStates.forEach((h, i) => (out[`hidden_states.${i}`] = h));
      return out;
    };
  }

  private compiled(b: number, l: number, masked: boolean, hidden: boolean): Promise<CompiledFunction> {
    return this.programs.get(`${b}x${l}|${masked}|${hidden}`, () => {
      const specs = [{ name: 'input_ids', shape: [b, l], dtype: 'int64' as const }];
      if (masked) specs.push({ name: 'attention_mask', shape: [b, l], dtype: 'int64' });
      return compileWithWeights(this.forwardFn(masked, hidden), specs, this.stateDict, this.runOptions);
    });
  }
}
