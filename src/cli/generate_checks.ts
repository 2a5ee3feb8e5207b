// Everything `kinema generate` can check before it loads a weight: the prompt, the long-video flags, the model
// folder and its classes, the output path (its folder exists and is writable, its extension agrees with
// --format), the size (a multiple of the VAE factor) and the memory the run will need. Each failure is a named
// KinemaError raised within milliseconds, so a bad request never costs a generation and never leaves a file.
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { KinemaError } from '../errors.js';
import { readConfig, readModelIndex } from '../io/model_folder.js';
import { formatFromPath } from '../io/video/index.js';
import type { VideoFormat } from '../io/video/index.js';
import { parseUNet3DConfig } from '../models/unet3d/config.js';
import { parseVaeConfig } from '../models/vae/config.js';
import { parseDualStreamConfig } from '../models/dsdn/dual_stream_unet.js';
import { readLvdmConfigFile } from '../models/lvdm/checkpoint.js';
import { parseLvdmUNetConfig } from '../models/lvdm/config.js';
import { ldmVaeConfig } from '../models/lvdm/vae.js';
import { checkModelIndex, pipelineClass } from '../pipelines/model_index.js';
import {
  checkMemory,
  defaultMemoryLimit,
  estimateRunMemory,
  parseByteSize,
} from '../pipelines/memory_estimate.js';
import type { MemoryEstimate } from '../pipelines/memory_estimate.js';
import { longVideoRequest } from './long_video_options.js';
import type { LongVideoFlags, LongVideoRequest, RefineRequest } from './long_video_options.js';
import { parseJsonLenient } from '../io/json.js';
import { schedulerFromConfig } from '../schedulers/index.js';
import type { SchedulerName } from '../schedulers/index.js';
import { sdeditTimesteps } from '../pipelines/long_video/refine.js';
import { planStreaming } from './streaming_checks.js';
import { checkImageFlags } from './image_to_video.js';
import type { ImageFlags } from './image_to_video.js';

export interface GenerateCheckFlags extends LongVideoFlags, ImageFlags {
  model?: string;
  /** --model X.ckpt: its inference YAML and a CLIP tokenizer folder. */
  config?: string;
  tokenizer?: string;
  output: string;
  frames: number;
  height?: number;
  width?: number;
  steps: number;
  format?: VideoFormat;
  maxMemory?: string;
  scheduler?: SchedulerName;
}

export interface GeneratePlan {
  modelDir: string;
  format: VideoFormat;
  width: number;
  height: number;
  long: LongVideoRequest | null;
  /** The folder's pipeline class (model_index.json `_class_name`). */
  pipeline: 'TextToVideoSDPipeline' | 'DualStreamPipeline' | 'LvdmCheckpoint';
  memory: MemoryEstimate;
  memoryLimit: number;
  /** `--refine`: the folder of the refining model (the model folder itself without --refiner); else null. */
  refinerDir: string | null;
}

/** The size the default model was trained at (used when --width/--height are not given). */
export const DEFAULT_SIZE = 64;

/** The output format: --format, else the extension; the two must agree (png ⇔ a folder path). */
export function outputFormat(output: string, format: VideoFormat | undefined): VideoFormat {
  const fromPath = formatFromPath(output); // an unknown extension (.avi) is VIDEO_UNSUPPORTED here
  if (format === undefined || format === fromPath) return fromPath;
  const what = fromPath === 'png' ? 'a folder of PNG frames' : `a .${extname(output).slice(1)} file`;
  throw new KinemaError(
    'GENERATE_FORMAT_MISMATCH',
    `--format ${format} contradicts -o ${output}, which names ${what}; ` +
      (format === 'png' ? 'give a folder path (e.g. -o frames/) ' : `use an .${format} name `) +
      'or drop --format (the extension decides)',
  );
}

/** The output's folder must exist and be writable now, not after the generation. */
export function checkOutputWritable(output: string, format: VideoFormat): void {
  const abs = resolve(output);
  // A PNG folder may be created by the writer, but its parent must exist; a file's folder must exist.
  const parent = dirname(format === 'png' ? abs.replace(/[\\/]+$/, '') : abs);
  if (!existsSync(parent) || !statSync(parent).isDirectory()) {
    throw new KinemaError(
      'OUTPUT_NOT_WRITABLE',
      `-o ${output}: the folder ${parent} does not exist (create it first)`,
    );
  }
  try {
    accessSync(parent, constants.W_OK);
  } catch {
    throw new KinemaError('OUTPUT_NOT_WRITABLE', `-o ${output}: no permission to write in ${parent}`);
  }
  if (format !== 'png' && existsSync(abs) && statSync(abs).isDirectory()) {
    throw new KinemaError(
      'OUTPUT_NOT_WRITABLE',
      `-o ${output} is a folder; give a file name (e.g. ${join(output, 'out.mp4')})`,
    );
  }
}

function weightFiles(dir: string): { bytes: number; half: boolean } {
  let bytes = 0;
  let half = false;
  for (const sub of ['unet', 'vae', 'text_encoder']) {
    for (const name of ['diffusion_pytorch_model', 'model']) {
      for (const variant of ['', '.fp16', '.bf16']) {
        const p = join(dir, sub, `${name}${variant}.safetensors`);
        if (!existsSync(p)) continue;
        bytes += statSync(p).size;
        half ||= variant !== '';
        break;
      }
    }
  }
  return { bytes, half };
}

/** All checks of `kinema generate`, in the order a user would fix them; returns what the run needs. */
export function planGenerate(
  prompt: string,
  flags: GenerateCheckFlags,
  defaultModelDir: string,
): GeneratePlan {
  if (!prompt.trim()) throw new KinemaError('GENERATE_EMPTY_PROMPT', 'the prompt is empty');
  const asked = longVideoRequest(flags, flags.frames, flags.steps);
  const modelDir = resolve(flags.model ?? defaultModelDir);
  if (existsSync(modelDir) && statSync(modelDir).isFile()) {
    if (flags.image !== undefined)
      throw new KinemaError(
        'GENERATE_BAD_OPTION',
        '--image is not implemented for VideoCrafter checkpoints (.ckpt) yet',
      );
    return planCheckpoint(modelDir, flags, asked);
  }
  for (const flag of ['config', 'tokenizer'] as const)
    if (flags[flag] !== undefined)
      throw new KinemaError(
        'GENERATE_BAD_OPTION',
        `--${flag} applies to --model <file.ckpt> (a VideoCrafter checkpoint), not to a model folder`,
      );
  if (!existsSync(join(modelDir, 'model_index.json'))) {
    throw new KinemaError(
      'MODEL_NOT_FOUND',
      flags.model
        ? `${modelDir} is not a diffusers model folder (no model_index.json)`
        : `no default model at ${modelDir}; pass --model <dir>`,
    );
  }
  const index = readModelIndex(modelDir);
  checkModelIndex(index, join(modelDir, 'model_index.json'));
  const pipeline = pipelineClass(index);
  if (pipeline === 'DualStreamPipeline' && asked)
    throw new KinemaError(
      'GENERATE_BAD_OPTION',
      `--long: ${modelDir} is a DSDN dual-stream model, which generates one window (drop --long)`,
    );
  if (pipeline === 'DualStreamPipeline')
    parseDualStreamConfig(readConfig(join(modelDir, 'dsdn')), join(modelDir, 'dsdn', 'config.json'));
  checkImageFlags(flags, modelDir, { pipeline });
  // --frames above one window picks --long streaming when the folder has adapters (--image too: its window
  // starts the video)
  const long = pipeline === 'TextToVideoSDPipeline' ? planStreaming(modelDir, asked, flags) : asked;
  const format = outputFormat(flags.output, flags.format);
  checkOutputWritable(flags.output, format);
  const unet = parseUNet3DConfig(readConfig(join(modelDir, 'unet')));
  const vae = parseVaeConfig(readConfig(join(modelDir, 'vae')));
  const factor = 2 ** (vae.blockOutChannels.length - 1);
  const isDefault = modelDir === resolve(defaultModelDir);
  const fallback = isDefault ? DEFAULT_SIZE : (unet.sampleSize ?? 32) * factor;
  const width = flags.width ?? fallback;
  const height = flags.height ?? fallback;
  if (width % factor !== 0 || height % factor !== 0) {
    throw new KinemaError(
      'GENERATE_BAD_SIZE',
      `--width ${width} --height ${height}: both must be multiples of ${factor} (this model's VAE factor)`,
    );
  }
  const weights = weightFiles(modelDir);
  // --long streaming also runs the CAM copy on the overlap frames: about F + O frames of activations
  const chunkFrames = long ? long.chunk + (long.streaming ? long.overlap : 0) : flags.frames;
  let memory = estimateRunMemory({
    unet,
    vae,
    weightBytes: weights.bytes,
    halfWeights: weights.half,
    width,
    height,
    // the dual stream runs two UNets side by side: about twice the activations of one
    frames: pipeline === 'DualStreamPipeline' ? 2 * chunkFrames : chunkFrames,
    outputFrames: chunkFrames,
  });
  let what = `${width}×${height}×${chunkFrames} frames`;
  let refinerDir: string | null = null;
  if (long?.refine) {
    const r = planRefiner(long.refine, modelDir, flags, width, height);
    refinerDir = r.dir;
    // The refine pass holds the generator's weights too when it is another model, and runs its own chunk.
    const bytes = r.dir === modelDir ? weights.bytes : weights.bytes + r.weights.bytes;
    const refining = estimateRunMemory({
      unet: r.unet,
      vae: r.vae,
      weightBytes: bytes,
      halfWeights: weights.half || r.weights.half,
      width,
      height,
      frames: long.refine.chunk,
      outputFrames: long.refine.chunk,
    });
    if (refining.total > memory.total) {
      memory = refining;
      what = `refining ${width}×${height}×${long.refine.chunk} frames`;
    }
  }
  const memoryLimit = flags.maxMemory !== undefined ? parseByteSize(flags.maxMemory) : defaultMemoryLimit();
  checkMemory(memory, memoryLimit, what);
  return { modelDir, format, width, height, long, pipeline, memory, memoryLimit, refinerDir };
}

/**
 * `--refine [--refiner DIR]`: the refining model's folder (a text-to-video diffusers folder), its VAE factor
 * against the video's size, and T' against its schedule at --steps — all from config files, no weights.
 */
function planRefiner(
  refine: RefineRequest,
  modelDir: string,
  flags: GenerateCheckFlags,
  width: number,
  height: number,
) {
  const dir = refine.refiner !== undefined ? resolve(refine.refiner) : modelDir;
  if (!existsSync(join(dir, 'model_index.json')))
    throw new KinemaError(
      'REFINE_MODEL_NOT_FOUND',
      `--refiner ${refine.refiner}: ${existsSync(dir) ? 'not a diffusers model folder (no model_index.json)' : 'no such folder'}`,
    );
  const index = readModelIndex(dir);
  checkModelIndex(index, join(dir, 'model_index.json'));
  if (pipelineClass(index) !== 'TextToVideoSDPipeline')
    throw new KinemaError(
      'REFINE_MODEL_NOT_FOUND',
      `--refiner ${dir}: a ${pipelineClass(index)} folder; the refiner must be a text-to-video UNet3D model`,
    );
  const unet = parseUNet3DConfig(readConfig(join(dir, 'unet')));
  const vae = parseVaeConfig(readConfig(join(dir, 'vae')));
  const factor = 2 ** (vae.blockOutChannels.length - 1);
  if (width % factor !== 0 || height % factor !== 0)
    throw new KinemaError(
      'GENERATE_BAD_SIZE',
      `--width ${width} --height ${height}: the refiner ${dir} needs multiples of its VAE factor ${factor}`,
    );
  const path = join(dir, 'scheduler', 'scheduler_config.json');
  if (!existsSync(path))
    throw new KinemaError('REFINE_MODEL_NOT_FOUND', `--refiner ${dir}: no scheduler/scheduler_config.json`);
  const cfg = parseJsonLenient(readFileSync(path, 'utf8'), path) as Record<string, unknown>;
  sdeditTimesteps(schedulerFromConfig(cfg, flags.scheduler), flags.steps, refine.strength);
  return { dir, unet, vae, weights: weightFiles(dir) };
}

/** `--model X.ckpt --config inference.yaml --tokenizer DIR`: a VideoCrafter checkpoint as released. */
function planCheckpoint(
  path: string,
  flags: GenerateCheckFlags,
  long: LongVideoRequest | null,
): GeneratePlan {
  if (flags.config === undefined || flags.tokenizer === undefined)
    throw new KinemaError(
      'GENERATE_BAD_OPTION',
      `--model ${path} is a checkpoint file: give its inference YAML (--config, e.g. VideoCrafter's ` +
        `configs/inference_t2v_512_v1.0.yaml) and a CLIP tokenizer folder (--tokenizer, e.g. Stable Diffusion 2's tokenizer/)`,
    );
  const settings = readLvdmConfigFile(resolve(flags.config));
  const tok = resolve(flags.tokenizer);
  if (!['tokenizer.json', 'vocab.json'].some((f) => existsSync(join(tok, f))))
    throw new KinemaError(
      'GENERATE_BAD_OPTION',
      `--tokenizer ${flags.tokenizer}: no tokenizer.json or vocab.json there (a Hugging Face CLIP tokenizer folder)`,
    );
  const format = outputFormat(flags.output, flags.format);
  checkOutputWritable(flags.output, format);
  const unet = parseLvdmUNetConfig(settings.unet);
  const vae = parseVaeConfig(ldmVaeConfig(settings.ddconfig, { scaleFactor: settings.scaleFactor }));
  const factor = 2 ** (vae.blockOutChannels.length - 1);
  const [lh, lw] = settings.latentSize ?? [32, 32];
  const width = flags.width ?? lw * factor;
  const height = flags.height ?? lh * factor;
  if (width % factor !== 0 || height % factor !== 0)
    throw new KinemaError(
      'GENERATE_BAD_SIZE',
      `--width ${width} --height ${height}: both must be multiples of ${factor} (this model's VAE factor)`,
    );
  const frames = long ? long.chunk : flags.frames;
  // The estimate's UNet terms from the LVDM config: level widths, attention at the YAML's resolutions, heads.
  const widths = unet.channelMult.map((m) => m * unet.modelChannels);
  const memory = estimateRunMemory({
    unet: {
      inChannels: unet.inChannels,
      blockOutChannels: widths,
      downBlockTypes: widths.map((_, i) =>
        unet.attentionResolutions.includes(2 ** i) ? 'CrossAttnDownBlock3D' : 'DownBlock3D',
      ),
      attentionHeadDim: Math.max(...widths) / unet.numHeadChannels,
    },
    vae,
    weightBytes: statSync(path).size,
    halfWeights: false,
    width,
    height,
    frames,
    outputFrames: frames,
  });
  const memoryLimit = flags.maxMemory !== undefined ? parseByteSize(flags.maxMemory) : defaultMemoryLimit();
  checkMemory(memory, memoryLimit, `${width}×${height}×${frames} frames`);
  return {
    modelDir: path,
    format,
    width,
    height,
    long,
    pipeline: 'LvdmCheckpoint',
    memory,
    memoryLimit,
    refinerDir: null,
  };
}
