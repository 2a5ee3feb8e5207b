// Text-to-video from a VideoCrafter checkpoint as released (`model.ckpt` + its inference YAML): the whole file
// loaded strictly (src/models/lvdm/checkpoint.ts) into the same TextToVideoPipeline the diffusers folders use,
// with the LVDM UNet as its denoiser. The sampler is the YAML's schedule as a DDIM scheduler configured as
// VideoCrafter's DDIMSampler runs it (uniform "leading" steps offset by 1, the last step to ᾱ₀). The OpenCLIP
// vocabulary is not in the checkpoint (open_clip ships it in its package): pass a CLIP tokenizer folder in the
// Hugging Face layout (e.g. Stable Diffusion 2's `tokenizer/`, the same BPE, padding with id 0).
import { TorchCheckpoint } from '../io/torch_ckpt.js';
import { CLIPTokenizer } from '../models/clip/tokenizer.js';
import { loadLvdmCheckpoint, readLvdmConfigFile } from '../models/lvdm/checkpoint.js';
import type { LvdmModelSettings } from '../models/lvdm/checkpoint.js';
import type { LvdmUNet } from '../models/lvdm/unet.js';
import { schedulerFromConfig } from '../schedulers/index.js';
import type { SchedulerName } from '../schedulers/index.js';
import { TextToVideoPipeline } from './text_to_video.js';
import { KinemaError } from '../errors.js';

/** The diffusers scheduler config of an LVDM schedule. */
export function lvdmSchedulerConfig(s: LvdmModelSettings): Record<string, unknown> {
  return {
    _class_name: 'DDIMScheduler',
    num_train_timesteps: s.timesteps,
    beta_start: s.linearStart,
    beta_end: s.linearEnd,
    beta_schedule: 'scaled_linear', // LDM's "linear": betas = linspace(√start, √end)²
    prediction_type: s.parameterization === 'v' ? 'v_prediction' : 'epsilon',
    clip_sample: false,
    set_alpha_to_one: false,
    steps_offset: 1,
    timestep_spacing: 'leading',
  };
}

export interface CheckpointPipelineOptions {
  /** The inference YAML that describes the checkpoint (VideoCrafter's configs/inference_*.yaml). */
  config: string;
  /** A CLIP tokenizer folder (Hugging Face layout). */
  tokenizer: string;
  scheduler?: SchedulerName;
  /** OpenCLIP text attention heads (default width / 64, as every OpenCLIP text tower has). */
  textHeads?: number;
}

export async function textToVideoFromCheckpoint(
  path: string,
  opts: CheckpointPipelineOptions,
): Promise<TextToVideoPipeline<LvdmUNet>> {
  const settings = readLvdmConfigFile(opts.config);
  const ckpt = TorchCheckpoint.open(path);
  let loaded;
  try {
    loaded = loadLvdmCheckpoint(
      ckpt,
      settings,
      opts.textHeads !== undefined ? { textHeads: opts.textHeads } : {},
    );
  } finally {
    ckpt.close();
  }
  if (!loaded.textEncoder)
    throw new KinemaError(
      'CKPT_KEY_MISMATCH',
      `${path}: no cond_stage_model.model.* text encoder in the checkpoint (a text-to-video model needs one)`,
    );
  const tokenizer = await CLIPTokenizer.fromPretrained(opts.tokenizer);
  // (a tokenizer whose ids exceed the text vocabulary is refused by the text encoder, naming the id)
  const scheduler = schedulerFromConfig(lvdmSchedulerConfig(settings), opts.scheduler);
  return new TextToVideoPipeline<LvdmUNet>({
    tokenizer,
    textEncoder: loaded.textEncoder,
    unet: loaded.unet,
    vae: loaded.vae,
    scheduler,
  });
}
