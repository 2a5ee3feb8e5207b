// The released StreamingT2V checkpoint (`streaming_t2v.ckpt`, a Lightning file; branch StreamingModelscope of
// Picsart-AI-Research/StreamingT2V) by its own key names, strictly, through the safe .ckpt reader
// (src/io/torch_ckpt.ts). Its `state_dict` holds the VideoLDM module's parameters under these prefixes:
//   unet.*        the CAM: ControlNet copy of the base's conv_in, time_embedding, transformer_in, down_blocks,
//                 mid_block, plus controlnet_cond_embedding.* (E_cond)          → adapters `cam.*`
//   base_model.*  the base UNet3D, with
//                   cross_attention_merger_down_blocks.<i>.* / _mid_block.*      → adapters, same names
//                   <spatial block>.attn2.{conv, conv_ln, alpha} (the APM, per layer) → adapters `apm_layers.<l>.*`
//                   everything else                                                → the base UNet3D
//   resampler.*   the APM's image-token MLP (context_embedding.0/.2)             → adapters `resampler.*`
//   text_encoder.*, vae.*  diffusers CLIPTextModel / AutoencoderKL, returned by their own names
//   image_encoder.model.visual.*  OpenCLIP ViT-H/14's visual tower → a CLIPVisionModel with projection
//                 (src/models/clip/open_clip_vision.ts; its pooled, projected output is the APM's embedding)
// Every key must land somewhere or loading fails naming it (CheckpointKeyMap).
import type { StateDict } from '../../nn/module.js';
import { CheckpointKeyMap } from '../../io/checkpoint_keys.js';
import type { TakenStateDict, TensorReader } from '../../io/checkpoint_keys.js';
import { UNet3DConditionModel } from '../unet3d/unet3d.js';
import type { UNet3DConfig } from '../unet3d/config.js';
import { BasicTransformerBlock } from '../unet3d/transformer.js';
import { StateDictError } from '../../nn/module.js';
import { StreamingAdapters } from './streaming_unet.js';
import type { StreamingConfig } from './config.js';
import { KinemaError } from '../../errors.js';
import { loadOpenClipVision } from '../clip/open_clip_vision.js';
import type { CLIPVisionModel } from '../clip/vision_model.js';

const APM_PARAM = /^(.+)\.attn2\.(conv\.weight|conv\.bias|conv_ln\.weight|conv_ln\.bias|alpha)$/;

export interface LoadedStreamingRelease {
  readonly unet: UNet3DConditionModel;
  readonly adapters: StreamingAdapters;
  /** The adapters' weights (state dict of `adapters`). */
  readonly adapterWeights: StateDict;
  /** The release's own text encoder and VAE weights (diffusers names, prefix removed), when present. */
  readonly textEncoder: TakenStateDict | null;
  readonly vae: TakenStateDict | null;
  /** The APM's image encoder (OpenCLIP visual tower), when the file has `image_encoder.model.visual.*`. */
  readonly imageEncoder: CLIPVisionModel | null;
}

/** Release APM key `<block path>.attn2.<param>` → `apm_layers.<l>.<param>` (l: the block's spatial index). */
export function apmKeyMap(unet: UNet3DConditionModel): Map<string, number> {
  const paths = new Map<string, number>();
  let l = 0;
  for (const [path, m] of unet.namedModules())
    if (m instanceof BasicTransformerBlock && m.opts.crossAttentionDim !== null) paths.set(path, l++);
  return paths;
}

function strict(
  model: { validateStateDict: (sd: StateDict, o: { shapes: Map<string, number[]> }) => void },
  t: TakenStateDict,
  where: string,
): void {
  try {
    model.validateStateDict(t.stateDict, { shapes: t.shapes });
  } catch (e) {
    if (e instanceof StateDictError) throw new StateDictError(`${where}: ${e.message}`);
    throw e;
  }
}

/** Loads the release's UNet, CAM, mergers, APM and resampler; throws CKPT_KEY_MISMATCH / STATE_DICT_MISMATCH. */
export function loadStreamingRelease(
  reader: TensorReader,
  unetConfig: UNet3DConfig,
  config: StreamingConfig,
  opts: { imageEncoderHeads?: number } = {},
): LoadedStreamingRelease {
  const keys = new CheckpointKeyMap(reader);
  const unet = new UNet3DConditionModel(unetConfig);
  const adapters = new StreamingAdapters(unetConfig, config);
  const apm = apmKeyMap(unet);
  const parts: TakenStateDict[] = [
    keys.take('unet.', (rest) => `cam.${rest}`),
    keys.take('base_model.cross_attention_merger_', (rest) => `cross_attention_merger_${rest}`),
    keys.take('base_model.', (rest) => {
      const m = APM_PARAM.exec(rest);
      const l = m ? apm.get(m[1]!) : undefined;
      return l === undefined ? undefined : `apm_layers.${l}.${m![2]}`;
    }),
    keys.take('resampler.', (rest) => `resampler.${rest}`),
  ];
  const own: TakenStateDict = { stateDict: new Map(), shapes: new Map() };
  for (const p of parts)
    for (const [k, v] of p.stateDict) {
      own.stateDict.set(k, v);
      // α is a 0-d parameter in the release, [1] here.
      own.shapes.set(k, k.endsWith('.alpha') ? [1] : p.shapes.get(k)!);
    }
  strict(adapters, own, `${reader.path} (unet.*, mergers, APM layers, resampler.*)`);
  const base = keys.take('base_model.');
  unet.loadWeights(base.stateDict, base.shapes, `${reader.path} (base_model.*)`);
  const has = (prefix: string): boolean => reader.keys().some((k) => k.startsWith(prefix));
  const textEncoder = has('text_encoder.') ? keys.take('text_encoder.') : null;
  const vae = has('vae.') ? keys.take('vae.') : null;
  const imageEncoder = has('image_encoder.model.visual.')
    ? loadOpenClipVision(keys, {
        prefix: 'image_encoder.model.visual.',
        ...(opts.imageEncoderHeads !== undefined && { heads: opts.imageEncoderHeads }),
      })
    : null;
  if (imageEncoder && imageEncoder.config.projectionDim !== config.imageEmbedDim)
    throw new KinemaError(
      'CKPT_KEY_MISMATCH',
      `${reader.path}: the image encoder embeds to ${imageEncoder.config.projectionDim} values, the resampler takes ${config.imageEmbedDim}`,
    );
  const left = keys.unused();
  if (left.length > 0)
    throw new KinemaError(
      'CKPT_KEY_MISMATCH',
      `${reader.path}: ${left.length} keys belong to no part of StreamingT2V: ${left.slice(0, 8).join(', ')}`,
    );
  return {
    unet,
    adapters,
    adapterWeights: own.stateDict,
    textEncoder,
    vae,
    imageEncoder,
  };
}
