// `kinema generate "prompt"`: text-to-video from a diffusers-layout model folder (default: the shipped model).
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { intOption, numberOption, unitOption } from './options.js';
import { TextToVideoPipeline } from '../pipelines/text_to_video.js';
import type { PipelineEvent, TextToVideoOptions } from '../pipelines/text_to_video.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { formatFromPath, writeVideo } from '../io/video/index.js';
import type { VideoFormat } from '../io/video/index.js';
import { hostTensor } from '../engine/runtime.js';
import type { ExecutionProvider } from '../engine/runtime.js';
import { Progress } from './progress.js';
import { vocabularyWords } from '../training/data/captions.js';
import { addLongVideoOptions, longVideoRequest } from './long_video_options.js';
import type { LongVideoFlags } from './long_video_options.js';
import { writeLongVideo } from './long_video.js';
import { readAnchorImage, readImageFile } from './streaming_checks.js';
import { addImageOptions } from './image_to_video.js';
import type { ImageFlags } from './image_to_video.js';
import { ImageAdapterBundle } from '../pipelines/image_to_video.js';
import { StreamingAdaptersBundle } from '../pipelines/streaming_t2v.js';
import { KinemaError } from '../errors.js';
import { planGenerate } from './generate_checks.js';
import { generateHelpText } from './generate_help.js';
import { parseLoRASpec } from '../io/lora_file.js';
import { checkLoRAFiles } from './lora.js';
import { loadLoRAs } from '../pipelines/lora.js';
import { DualStreamPipeline } from '../pipelines/dual_stream.js';
import { textToVideoFromCheckpoint } from '../pipelines/lvdm_checkpoint.js';

export const DEFAULT_MODEL_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../models/default');

/** What the shipped default model was trained for (used when --model is not given). */
export const DEFAULT_MODEL_SETTINGS = { width: 64, height: 64, frames: 16, steps: 25, fps: 8 } as const;

/** The prompt's words (lower case, first occurrence order) that the world's caption grammar never produces. */
export function unseenWords(prompt: string, vocabulary: ReadonlySet<string> = vocabularyWords()): string[] {
  const out: string[] = [];
  for (const w of prompt.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [])
    if (!vocabulary.has(w) && !out.includes(w)) out.push(w);
  return out;
}

interface GenerateFlags extends LongVideoFlags, ImageFlags {
  model?: string;
  output: string;
  negative: string;
  frames: number;
  height?: number;
  width?: number;
  steps: number;
  guidance: number;
  guidanceRescale: number;
  seed: number;
  fps: number;
  scheduler?: 'ddim' | 'ddpm' | 'dpm';
  format?: VideoFormat;
  latents?: string;
  variant?: 'fp16' | 'bf16';
  device?: ExecutionProvider;
  maxMemory?: string;
  lora?: string[];
  contentScale?: number;
  motionScale?: number;
  config?: string;
  tokenizer?: string;
}

/** Reads `--latents file.safetensors`: a tensor named `latents` of shape [1, C, frames, h, w]. */
export function readLatentsFile(path: string) {
  const f = SafetensorsFile.open(path);
  try {
    if (!f.has('latents'))
      throw new KinemaError(
        'GENERATE_BAD_LATENTS',
        `${path}: no tensor named 'latents' (found: ${f.names().join(', ') || 'none'})`,
      );
    const shape = f.info('latents').shape;
    if (shape.length !== 5 || shape[0] !== 1)
      throw new KinemaError(
        'GENERATE_BAD_LATENTS',
        `${path}: 'latents' must have shape [1, C, frames, h, w], got [${shape}]`,
      );
    return hostTensor(f.readFloat32('latents'), shape);
  } finally {
    f.close();
  }
}

export async function runGenerate(prompt: string, flags: GenerateFlags): Promise<string> {
  // Every check that needs no weights runs first (generate_checks.ts), so bad input fails in milliseconds.
  const plan = planGenerate(prompt, flags, DEFAULT_MODEL_DIR);
  const { modelDir, format, long } = plan;
  const loras = (flags.lora ?? []).map(parseLoRASpec);
  checkLoRAFiles(loras);
  const isDefault = modelDir === DEFAULT_MODEL_DIR;
  if (isDefault) {
    const unseen = unseenWords(prompt);
    if (unseen.length > 0)
      process.stderr.write(
        `note: the default model never saw ${unseen.length === 1 ? 'this word' : 'these words'} in training: ` +
          `${unseen.map((w) => `"${w}"`).join(', ')}. It only knows the procedural world's captions ` +
          `(shapes, colours, motions, backgrounds; see models/default/MODEL_CARD.md), so expect ` +
          `${unseen.length === 1 ? 'it' : 'them'} to be ignored.\n`,
      );
  }
  const dual = plan.pipeline === 'DualStreamPipeline';
  for (const [flag, v] of [
    ['--content-scale', flags.contentScale],
    ['--motion-scale', flags.motionScale],
  ] as const)
    if (v !== undefined && !dual)
      throw new KinemaError(
        'GENERATE_BAD_OPTION',
        `${flag} applies to DSDN dual-stream models (e.g. models/dsdn); ${modelDir} is a single-stream model`,
      );
  if (dual && loras.length > 0)
    throw new KinemaError(
      'GENERATE_BAD_OPTION',
      `--lora: ${modelDir} is a DSDN model, whose increment units are its LoRA (use --content-scale/--motion-scale)`,
    );
  const opts: TextToVideoOptions = {
    prompt,
    negativePrompt: flags.negative,
    numFrames: flags.frames,
    height: plan.height,
    width: plan.width,
    numInferenceSteps: flags.steps,
    guidanceScale: flags.guidance,
    guidanceRescale: flags.guidanceRescale,
    seed: flags.seed,
    fps: flags.fps,
    ...(flags.latents ? { latents: readLatentsFile(flags.latents) } : {}),
  };
  if (plan.pipeline === 'LvdmCheckpoint') {
    if (loras.length > 0 || long)
      throw new KinemaError(
        'GENERATE_BAD_OPTION',
        `${loras.length > 0 ? '--lora' : '--long'} is not implemented for VideoCrafter checkpoints (--model ${modelDir}) yet`,
      );
    const pipe = await textToVideoFromCheckpoint(modelDir, {
      config: flags.config!,
      tokenizer: flags.tokenizer!,
      ...(flags.scheduler ? { scheduler: flags.scheduler } : {}),
    });
    await writeFromEvents(pipe.generate(opts), flags, format);
    return flags.output;
  }
  if (dual) {
    if (opts.guidanceRescale)
      throw new KinemaError('GENERATE_BAD_OPTION', '--guidance-rescale is not implemented for DSDN models');
    const pipe = await DualStreamPipeline.fromPretrained(modelDir, {
      ...(flags.scheduler ? { scheduler: flags.scheduler } : {}),
      ...(flags.device ? { ep: flags.device } : {}),
    });
    const events = pipe.generate({
      ...opts,
      ...(flags.contentScale !== undefined && { contentScale: flags.contentScale }),
      ...(flags.motionScale !== undefined && { motionScale: flags.motionScale }),
    });
    await writeFromEvents(events, flags, format);
    return flags.output;
  }
  // --anchor and --image decode before any weights load (a bad file fails in milliseconds).
  const image = flags.image
    ? await readImageFile(flags.image, plan.width, plan.height, '--image', 'I2V_BAD_IMAGE')
    : undefined;
  const anchorPath = long?.streaming?.anchor;
  const anchor = anchorPath ? await readAnchorImage(anchorPath, plan.width, plan.height) : undefined;
  if (long?.streaming?.implicit)
    process.stderr.write(
      `note: --frames ${flags.frames} is longer than the model's ${long.chunk}-frame window: generating it with ` +
        `--long streaming (StreamingT2V adapters in ${modelDir}/streaming); pass --long naive|vidrd for another mode\n`,
    );
  const pipe = await TextToVideoPipeline.fromPretrained(modelDir, {
    ...(flags.scheduler ? { scheduler: flags.scheduler } : {}),
    ...(flags.variant ? { variant: flags.variant } : {}),
    ...(flags.device ? { ep: flags.device } : {}),
  });
  if (loras.length > 0) loadLoRAs(pipe, loras);
  // --image: the image adapter (+ first-frame replacement) makes the first window; with --long the chunks after
  // it continue from there, and StreamingT2V's APM keeps the image as its anchor unless --anchor names another.
  const i2v = image ? await ImageAdapterBundle.load(modelDir, pipe.components.unet) : null;
  const imageOpts = image && {
    image,
    ...(flags.imageScale !== undefined && { imageScale: flags.imageScale }),
    ...(flags.firstFrame !== undefined && { firstFrame: flags.firstFrame }),
  };
  if (long) {
    const apmAnchor = anchor ?? image;
    const mode =
      long.mode ??
      (await StreamingAdaptersBundle.load(modelDir, pipe.components.unet)).mode(
        pipe,
        apmAnchor ? { anchor: apmAnchor } : {},
      );
    // --refine: the generating model refines unless --refiner names another folder (checked in planGenerate).
    const refiner =
      plan.refinerDir && plan.refinerDir !== modelDir
        ? await TextToVideoPipeline.fromPretrained(plan.refinerDir, {
            ...(flags.scheduler ? { scheduler: flags.scheduler } : {}),
            ...(flags.variant ? { variant: flags.variant } : {}),
            ...(flags.device ? { ep: flags.device } : {}),
          })
        : pipe;
    await writeLongVideo(
      pipe,
      opts,
      {
        ...long,
        mode,
        ...(i2v &&
          imageOpts && { firstChunk: (o: TextToVideoOptions) => i2v.generate(pipe, { ...o, ...imageOpts }) }),
      },
      { path: flags.output, format, fps: flags.fps },
      refiner,
    );
    return flags.output;
  }
  if (i2v && imageOpts) {
    await writeFromEvents(i2v.generate(pipe, { ...opts, ...imageOpts }), flags, format);
    return flags.output;
  }
  await writeFromEvents(pipe.generate(opts), flags, format);
  return flags.output;
}

/** Draws the denoising bar from a pipeline's events and writes the video when they end. */
async function writeFromEvents(
  events: AsyncGenerator<PipelineEvent>,
  flags: GenerateFlags,
  format: VideoFormat,
): Promise<void> {
  const bar = new Progress({ label: 'denoising', total: flags.steps, unit: 'steps' });
  try {
    for await (const e of events) {
      if (e.kind === 'step') bar.update(e.index + 1);
      if (e.kind === 'done') {
        bar.finish();
        await writeVideo(flags.output, e.frames, {
          width: e.width,
          height: e.height,
          fps: flags.fps,
          format,
        });
      }
    }
  } catch (err) {
    bar.abandon();
    throw err;
  }
}

export function generateCommand(): Command {
  return addImageOptions(addLongVideoOptions(new Command('generate')))
    .description('generate a video from a text prompt')
    .argument('<prompt>', 'what the video shows')
    .option(
      '-m, --model <dir>',
      'diffusers-layout model folder (default: the shipped model), or a VideoCrafter .ckpt with --config and --tokenizer',
    )
    .option(
      '--config <yaml>',
      "--model X.ckpt: the checkpoint's inference YAML (VideoCrafter's configs/inference_*.yaml)",
    )
    .option(
      '--tokenizer <dir>',
      '--model X.ckpt: a CLIP tokenizer folder (Hugging Face layout, e.g. Stable Diffusion 2 tokenizer/)',
    )
    .option(
      '-o, --output <path>',
      'output file (.mp4, .webm, .gif, .webp) or folder for PNG frames',
      'out.mp4',
    )
    .option('-n, --negative <text>', 'negative prompt', '')
    .option('--frames <n>', 'number of frames', intOption('--frames', 1), DEFAULT_MODEL_SETTINGS.frames)
    .option(
      '--height <px>',
      'height in pixels, a multiple of the VAE factor: 8 for the default model (default: 64 there, else from the UNet config)',
      intOption('--height', 8),
    )
    .option(
      '--width <px>',
      'width in pixels, a multiple of the VAE factor: 8 for the default model (default: 64 there, else from the UNet config)',
      intOption('--width', 8),
    )
    .option('--steps <n>', 'denoising steps', intOption('--steps', 1), DEFAULT_MODEL_SETTINGS.steps)
    .option('--guidance <scale>', 'classifier-free guidance scale', numberOption('--guidance'), 9)
    .option(
      '--guidance-rescale <phi>',
      'guidance rescale in [0, 1] (diffusers guidance_rescale; e.g. 0.7 with zero-terminal-SNR models)',
      unitOption('--guidance-rescale'),
      0,
    )
    .option('--seed <n>', 'random seed for the initial noise', intOption('--seed', 0), 0)
    .option(
      '--fps <n>',
      'frames per second of the output (and FPS conditioning)',
      intOption('--fps', 1),
      DEFAULT_MODEL_SETTINGS.fps,
    )
    .addOption(
      new Option(
        '--scheduler <name>',
        "sampler (default: the model's scheduler_config.json; DDIM for the default model)",
      ).choices(['ddim', 'ddpm', 'dpm']),
    )
    .addOption(
      new Option(
        '--format <fmt>',
        'output format; must agree with the -o extension (default: from the extension; png = a folder)',
      ).choices(['mp4', 'webm', 'gif', 'webp', 'png']),
    )
    .option(
      '--latents <file>',
      "initial latents: a safetensors file with a tensor 'latents' [1, C, frames, h, w]",
    )
    .addOption(new Option('--variant <v>', 'load *.fp16 / *.bf16 weight files').choices(['fp16', 'bf16']))
    .addOption(
      new Option(
        '--device <ep>',
        "ONNX Runtime execution provider: cpu (default), webgpu (bundled; needs a Vulkan driver on Linux), cuda (needs onnxruntime-node's CUDA EP installed)",
      ).choices(['cpu', 'webgpu', 'cuda']),
    )
    .option(
      '--max-memory <size>',
      'refuse a run whose estimated peak memory exceeds this (e.g. 8G, 512M; default: 80 % of available memory)',
    )
    .option(
      '--lora <file[:scale]>',
      'LoRA adapter (diffusers/PEFT or kohya safetensors) at a strength (default 1; 0 = the base model); repeatable',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      '--content-scale <l>',
      'DSDN models: strength λ_c of the content increment unit (default 1; 0 = the frozen base)',
      numberOption('--content-scale'),
    )
    .option(
      '--motion-scale <l>',
      'DSDN models: strength λ_m of the motion increment unit (default 1; 0 = the frozen base)',
      numberOption('--motion-scale'),
    )
    .addHelpText('after', generateHelpText())
    .action(async (prompt: string, flags: GenerateFlags) => {
      const out = await runGenerate(prompt, flags);
      process.stderr.write(`wrote ${out}\n`);
    });
}
