// `kinema train <stage>`: trains one of the default models' components on the procedural world. Each stage
// checkpoints into `<out>/checkpoints` and resumes from there when run again; Ctrl-C checkpoints the current
// step and stops (a second Ctrl-C quits at once). `--export <dir>` writes the trained component(s) as fp16
// into a diffusers pipeline folder such as models/default.
import { resolve } from 'node:path';
import { Command } from 'commander';
import { fractionOption, intOption, positiveOption, positiveUnitOption } from './options.js';
import { TRAIN_PREDICTIONS } from '../training/stages/common.js';
import type {
  StageDefinition,
  StageOptions,
  StageResult,
  TrainPrediction,
} from '../training/stages/common.js';
import { clipStage } from '../training/stages/clip.js';
import { vaeStage } from '../training/stages/vae.js';
import { unetStage } from '../training/stages/unet.js';
import { vaeTemporalStage } from '../training/stages/vae_temporal.js';
import { loraStage, WORLD_BACKGROUNDS } from '../training/stages/lora.js';
import { dsdnStage } from '../training/stages/dsdn.js';
import { camApmStage } from '../training/stages/cam_apm.js';
import { i2vStage } from '../training/stages/i2v.js';
import { KinemaError } from '../errors.js';
import { readConfigJson, readUnetRecipe } from '../training/stages/unet_recipe.js';
import type { UnetRecipe, UnetRecipeSettings } from '../training/stages/unet_recipe.js';

/** The stages `kinema train` knows, in the order they must run (each one's outputs feed the next). */
export const TRAINING_STAGES: readonly StageDefinition[] = [
  clipStage,
  vaeStage,
  unetStage,
  vaeTemporalStage,
  loraStage,
  dsdnStage,
  camApmStage,
  i2vStage,
];

export interface TrainFlags {
  out?: string;
  steps?: number;
  batch?: number;
  lr?: number;
  seed?: number;
  threads?: number;
  checkpointEvery?: number;
  export?: string;
  init?: string;
  stopAfter?: number;
  predictionType?: string;
  trainTextEncoder?: boolean;
  textProbe?: number;
  textLrScale?: number;
  frames?: number;
  temporalPositions?: boolean;
  temporalTextAttention?: boolean;
  temporalTextLrScale?: number;
  frameNoiseShared?: number;
  zeroTerminalSnr?: boolean;
  motionWeight?: number;
  trackCentring?: number;
  timestepShift?: number;
  config?: string;
  base?: string;
  rank?: number;
  alpha?: number;
  targets?: string;
  data?: string;
  worldBackground?: string;
  clip?: string;
}

/** The stage named `name` (errors list the known stages). */
export function findStage(
  name: string,
  stages: readonly StageDefinition[] = TRAINING_STAGES,
): StageDefinition {
  const stage = stages.find((s) => s.name === name);
  if (!stage) {
    throw new KinemaError(
      'TRAIN_BAD_OPTION',
      `unknown training stage '${name}' (stages: ${stages.map((s) => s.name).join(', ')})`,
    );
  }
  return stage;
}

function strictlyLora(stage: StageDefinition, flag: string): true {
  if (stage.name !== 'lora')
    throw new KinemaError('TRAIN_BAD_OPTION', `${flag} applies to the lora stage only, not '${stage.name}'`);
  return true;
}

function loraOnly(stage: StageDefinition, flag: string): true {
  if (stage.name !== 'lora' && stage.name !== 'dsdn')
    throw new KinemaError(
      'TRAIN_BAD_OPTION',
      `${flag} applies to the lora and dsdn stages only, not '${stage.name}'`,
    );
  return true;
}

function worldBackground(v: string): (typeof WORLD_BACKGROUNDS)[number] {
  const hit = WORLD_BACKGROUNDS.find((b) => b === v);
  if (!hit)
    throw new KinemaError(
      'TRAIN_BAD_OPTION',
      `--world-background must be ${WORLD_BACKGROUNDS.join(', ')}, got '${v}'`,
    );
  return hit;
}

function unetOnly(stage: StageDefinition, flag: string): true {
  if (stage.name !== 'unet')
    throw new KinemaError('TRAIN_BAD_OPTION', `${flag} applies to the unet stage only, not '${stage.name}'`);
  return true;
}

function predictionType(stage: StageDefinition, v: string): TrainPrediction {
  unetOnly(stage, '--prediction-type');
  const hit = TRAIN_PREDICTIONS.find((t) => t === v);
  if (!hit)
    throw new KinemaError(
      'TRAIN_BAD_OPTION',
      `--prediction-type must be ${TRAIN_PREDICTIONS.join(' or ')}, got '${v}'`,
    );
  return hit;
}

/** A unet-stage option that only makes sense when the text encoder is trained. */
function textEncoderOption(stage: StageDefinition, flags: TrainFlags, flag: string, v: number): number {
  unetOnly(stage, flag);
  if (flags.trainTextEncoder !== true)
    throw new KinemaError('TRAIN_BAD_OPTION', `${flag} needs --train-text-encoder`);
  return v;
}

/** The JSON object of a vae-stage `--config` file: model config keys over the stage's defaults. */
export function readConfigOverrides(stage: StageDefinition, file: string): Record<string, unknown> {
  if (stage.name !== 'vae')
    throw new KinemaError(
      'TRAIN_BAD_OPTION',
      `--config applies to the vae and unet stages, not '${stage.name}'`,
    );
  const value = readConfigJson(file, 'TRAIN_BAD_OPTION');
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new KinemaError('TRAIN_BAD_OPTION', `--config: ${file} must hold a JSON object of config keys`);
  return value as Record<string, unknown>;
}

/** Each experiment flag and the recipe setting it duplicates (both at once is refused, naming them). */
const RECIPE_FLAGS: readonly (readonly [keyof TrainFlags, string, keyof UnetRecipeSettings])[] = [
  ['predictionType', '--prediction-type', 'predictionType'],
  ['trainTextEncoder', '--train-text-encoder', 'trainTextEncoder'],
  ['textProbe', '--text-probe', 'textProbe'],
  ['textLrScale', '--text-lr-scale', 'textLrScale'],
  ['frames', '--frames', 'frames'],
  ['temporalPositions', '--temporal-positions', 'temporalPositions'],
  ['temporalTextAttention', '--temporal-text-attention', 'temporalTextAttention'],
  ['temporalTextLrScale', '--temporal-text-lr-scale', 'temporalTextLrScale'],
  ['frameNoiseShared', '--frame-noise-shared', 'frameNoiseShared'],
  ['zeroTerminalSnr', '--zero-terminal-snr', 'zeroTerminalSnr'],
  ['motionWeight', '--motion-weight', 'motionWeight'],
  ['trackCentring', '--track-centring', 'trackCentring'],
  ['timestepShift', '--timestep-shift', 'timestepShift'],
];

/** The unet stage's `--config` recipe, checked against the flags that would set the same things. */
function unetRecipe(flags: TrainFlags): UnetRecipe | undefined {
  if (flags.config === undefined) return undefined;
  const recipe = readUnetRecipe(flags.config);
  for (const [flag, name, setting] of RECIPE_FLAGS)
    if (flags[flag] !== undefined && recipe.settings[setting] !== undefined)
      throw new KinemaError(
        'TRAIN_BAD_OPTION',
        `${name} and the --config recipe (${flags.config}) both set ${setting}; keep one of them`,
      );
  return recipe;
}

/** Stage options from the command-line flags, the unet stage's recipe (--config) and the stage's defaults. */
export function stageOptions(stage: StageDefinition, flags: TrainFlags): StageOptions {
  const d = stage.defaults;
  const recipe = stage.name === 'unet' ? unetRecipe(flags) : undefined;
  const budget = recipe?.training ?? {};
  return {
    out: resolve(flags.out ?? `runs/${stage.name}`),
    steps: flags.steps ?? budget.steps ?? d.steps,
    batch: flags.batch ?? budget.batch ?? d.batch,
    lr: flags.lr ?? budget.lr ?? d.lr,
    seed: flags.seed ?? budget.seed ?? 0,
    checkpointEvery: flags.checkpointEvery ?? d.checkpointEvery,
    ...(flags.threads !== undefined && { threads: flags.threads }),
    ...(flags.export !== undefined && { exportDir: resolve(flags.export) }),
    ...(flags.init !== undefined && { init: resolve(flags.init) }),
    ...(flags.predictionType !== undefined && {
      predictionType: predictionType(stage, flags.predictionType),
    }),
    ...(flags.trainTextEncoder === true && { trainTextEncoder: unetOnly(stage, '--train-text-encoder') }),
    ...(flags.textProbe !== undefined && {
      textProbe: textEncoderOption(stage, flags, '--text-probe', flags.textProbe),
    }),
    ...(flags.textLrScale !== undefined && {
      textLrScale: textEncoderOption(stage, flags, '--text-lr-scale', flags.textLrScale),
    }),
    ...(flags.frames !== undefined &&
      (stage.name === 'lora' ||
        stage.name === 'dsdn' ||
        stage.name === 'cam-apm' ||
        unetOnly(stage, '--frames')) && {
        frames: flags.frames,
      }),
    ...(flags.temporalPositions === true && {
      temporalPositions: unetOnly(stage, '--temporal-positions'),
    }),
    ...(flags.temporalTextAttention === true && {
      temporalTextAttention: unetOnly(stage, '--temporal-text-attention'),
    }),
    ...(flags.temporalTextLrScale !== undefined &&
      unetOnly(stage, '--temporal-text-lr-scale') && { temporalTextLrScale: flags.temporalTextLrScale }),
    ...(flags.frameNoiseShared !== undefined &&
      unetOnly(stage, '--frame-noise-shared') && { frameNoiseShared: flags.frameNoiseShared }),
    ...(flags.zeroTerminalSnr === true && { zeroTerminalSnr: unetOnly(stage, '--zero-terminal-snr') }),
    ...(flags.motionWeight !== undefined &&
      unetOnly(stage, '--motion-weight') && { motionWeight: flags.motionWeight }),
    ...(flags.trackCentring !== undefined &&
      unetOnly(stage, '--track-centring') && { trackCentring: flags.trackCentring }),
    ...(flags.timestepShift !== undefined &&
      unetOnly(stage, '--timestep-shift') && { timestepShift: flags.timestepShift }),
    ...(recipe?.unet !== undefined && { configOverrides: recipe.unet }),
    ...(recipe !== undefined && { unetSettings: recipe.settings }),
    ...(flags.config !== undefined &&
      recipe === undefined && { configOverrides: readConfigOverrides(stage, flags.config) }),
    ...(flags.base !== undefined && { base: baseFolder(stage, flags.base) }),
    ...(flags.rank !== undefined && loraOnly(stage, '--rank') && { loraRank: flags.rank }),
    ...(flags.alpha !== undefined && loraOnly(stage, '--alpha') && { loraAlpha: flags.alpha }),
    ...(flags.targets !== undefined &&
      loraOnly(stage, '--targets') && {
        loraTargets: flags.targets
          .split(',')
          .map((t) => t.trim())
          .filter((t) => t !== ''),
      }),
    ...(flags.data !== undefined && strictlyLora(stage, '--data') && { dataDir: resolve(flags.data) }),
    ...(flags.worldBackground !== undefined &&
      strictlyLora(stage, '--world-background') && {
        worldBackground: worldBackground(flags.worldBackground),
      }),
    ...(flags.clip !== undefined && { clipModel: clipFolder(stage, flags.clip) }),
  };
}

/** `--base <dir>` (vae-temporal only): the pipeline folder whose VAE gets the temporal decoder. */
function baseFolder(stage: StageDefinition, dir: string): string {
  if (!['vae-temporal', 'lora', 'dsdn', 'cam-apm', 'i2v'].includes(stage.name))
    throw new KinemaError(
      'TRAIN_BAD_OPTION',
      `--base applies to the vae-temporal, lora, dsdn, cam-apm and i2v stages only, not '${stage.name}'`,
    );
  return resolve(dir);
}

/** `--clip <dir>` (cam-apm only): the CLIPModel whose vision tower embeds the APM's anchor frames. */
function clipFolder(stage: StageDefinition, dir: string): string {
  if (stage.name !== 'cam-apm')
    throw new KinemaError(
      'TRAIN_BAD_OPTION',
      `--clip applies to the cam-apm stage only, not '${stage.name}'`,
    );
  return resolve(dir);
}

/** Runs a stage with Ctrl-C wired to "checkpoint and stop". */
export async function runTrain(
  name: string,
  flags: TrainFlags,
  stages: readonly StageDefinition[] = TRAINING_STAGES,
): Promise<StageResult & { interrupted: boolean }> {
  const stage = findStage(name, stages);
  const options = stageOptions(stage, flags);
  let interrupted = false;
  let steps = 0;
  const onSigint = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\nkinema train: stopping after this step (Ctrl-C again to quit at once)\n');
  };
  process.on('SIGINT', onSigint);
  try {
    // --stop-after counts the steps of this invocation; the run's own step count decides in the stage.
    const stopAt = flags.stopAfter;
    const result = await stage.run({
      ...options,
      shouldStop: () => interrupted || (stopAt !== undefined && ++steps >= stopAt),
    });
    return { ...result, interrupted };
  } finally {
    process.off('SIGINT', onSigint);
  }
}

function stageList(stages: readonly StageDefinition[]): string {
  const width = Math.max(...stages.map((s) => s.name.length));
  const lines = stages.map((s) => {
    const d = s.defaults;
    return `  ${s.name.padEnd(width)}  ${s.summary}\n  ${' '.repeat(width)}  defaults: --steps ${d.steps} --batch ${d.batch} --lr ${d.lr} --checkpoint-every ${d.checkpointEvery}`;
  });
  return `\nStages (run in this order):\n${lines.join('\n')}\n\nExample:\n  kinema train clip --export models/default\n`;
}

export function trainCommand(stages: readonly StageDefinition[] = TRAINING_STAGES): Command {
  return new Command('train')
    .description('train a component of the default model on the procedural world (resumes automatically)')
    .argument('<stage>', `what to train: ${stages.map((s) => s.name).join(', ')}`)
    .option('--out <dir>', 'run folder: checkpoints/, loss.png, metrics.json (default: runs/<stage>)')
    .option('--steps <n>', 'total optimizer steps (default: per stage)', intOption('--steps', 1))
    .option('--batch <n>', 'batch size (default: per stage)', intOption('--batch', 1))
    .option(
      '--lr <x>',
      'peak learning rate, warmup then cosine decay (default: per stage)',
      positiveOption('--lr'),
    )
    .option('--seed <n>', 'seed of the initialization and the data order (default 0)', intOption('--seed', 0))
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', intOption('--threads', 1))
    .option(
      '--checkpoint-every <n>',
      'steps between checkpoints (default: per stage)',
      intOption('--checkpoint-every', 1),
    )
    .option(
      '--export <dir>',
      'pipeline folder (e.g. models/default) to write the trained component(s) into, fp16',
    )
    .option(
      '--init <checkpoint>',
      "start a new run from another run's checkpoint of the same stage (fine-tuning; EMA weights when saved); " +
        'unet: also a pipeline folder such as models/default',
    )
    .option(
      '--stop-after <n>',
      'checkpoint and stop after n steps of this invocation (the LR schedule still follows --steps)',
      intOption('--stop-after', 1),
    )
    .optionsGroup(
      'UNet experiment settings (a --config recipe names them all, reproducibly: docs/training_recipes.md):',
    )
    .option(
      '--prediction-type <type>',
      'unet stage: what the UNet learns to predict, v_prediction (default) or epsilon',
    )
    .option(
      '--train-text-encoder',
      'unet stage: fine-tune the text encoder with the UNet (exported to <export>/text_encoder)',
    )
    .option(
      '--text-probe <weight>',
      'unet stage, with --train-text-encoder: add a loss (this weight) that makes every attribute a caption ' +
        'names linearly decodable from the text states (the probe is not exported)',
      positiveOption('--text-probe'),
    )
    .option(
      '--text-lr-scale <x>',
      "unet stage, with --train-text-encoder: the text encoder's (and probe's) learning rate is x times the UNet's",
      positiveOption('--text-lr-scale'),
    )
    .option(
      '--frames <n>',
      'unet stage: frames per training clip (default 8; generation uses 16)',
      intOption('--frames', 1),
    )
    .option(
      '--temporal-positions',
      "unet stage: sinusoidal frame positions in the UNet's temporal attention (config temporal_positions); " +
        'with --init from a run without them, the new run fine-tunes into them',
    )
    .option(
      '--temporal-text-attention',
      "unet stage: an attention from the UNet's temporal transformers to the text (config temporal_text_attention), " +
        'zero-initialised; with --init from a run without it, the new run starts from that run and adds it',
    )
    .option(
      '--temporal-text-lr-scale <x>',
      "unet stage: the temporal text attention's learning rate is x times the UNet's (a new branch starts at zero)",
      positiveOption('--temporal-text-lr-scale'),
    )
    .option(
      '--frame-noise-shared <x>',
      'unet stage: fraction in [0, 1) of the noise variance shared by the frames of a clip (mixed noise prior; ' +
        'config frame_noise_shared, used by generation too)',
      fractionOption('--frame-noise-shared'),
    )
    .option(
      '--zero-terminal-snr',
      'unet stage (v-prediction): betas rescaled to zero terminal SNR, so t = 999 is pure noise as at sampling; ' +
        'the export samples with trailing timesteps',
    )
    .option(
      '--motion-weight <beta>',
      'unet stage (v-prediction): add beta × the mean square of the part of the x0 error that changes from ' +
        'frame to frame, weighted by 1 − alpha-bar_t (more of the gradient goes to motion; the optimum is unchanged)',
      positiveOption('--motion-weight'),
    )
    .option(
      '--track-centring <k>',
      "unet stage: training clips' straight-line motions start within k × the free room (0 < k ≤ 1) around " +
        'the start that centres their track, along the axes they move on, so that where an object is says ' +
        'which way it goes (1: anywhere, as the world samples)',
      positiveUnitOption('--track-centring'),
    )
    .option(
      '--timestep-shift <s>',
      "unet stage: training timesteps T·s·u/(1 + (s − 1)·u) for uniform u (Stable Diffusion 3's shift); s > 1 " +
        'gives more samples at high noise, where the caption decides layout and motion (default 1: uniform)',
      positiveOption('--timestep-shift'),
    )
    .optionsGroup('Options:')
    .option(
      '--config <file.json>',
      'unet stage: a training recipe (objective, schedule, noise, text, temporal, data incl. ladder rung and ' +
        'offset, budget; UNet config keys under "unet"; configs/unet/ has the model card\'s); vae stage: ' +
        'diffusers config keys over its default model (e.g. {"latent_channels": 8})',
    )
    .option(
      '--base <dir>',
      'vae-temporal stage: the pipeline folder whose VAE gets the temporal decoder; lora stage: the pipeline ' +
        'whose UNet gets the adapter (default models/default)',
    )
    .option('--rank <r>', 'lora stage: adapter rank (default 4)', intOption('--rank', 1))
    .option(
      '--alpha <a>',
      'lora stage: LoRA alpha, scale = alpha / rank (default: the rank)',
      positiveOption('--alpha'),
    )
    .option(
      '--targets <names>',
      'lora stage: comma-separated layer-name suffixes (default to_q,to_k,to_v,to_out.0,ff.net.0.proj,ff.net.2)',
    )
    .option(
      '--data <dir>',
      'lora stage: train on NAME.mp4 + NAME.txt caption pairs in this folder instead of the world',
    )
    .option(
      '--world-background <kind>',
      'lora stage: world scenes with this background only: solid, gradient, stripes or checker (a style adapter)',
    )
    .option(
      '--clip <dir>',
      'cam-apm stage: the CLIPModel folder whose vision tower embeds the anchor frames (default runs/clip/clip_model)',
    )
    .addHelpText('after', stageList(stages))
    .action(async (name: string, flags: TrainFlags) => {
      const result = await runTrain(name, flags, stages);
      const out = stageOptions(findStage(name, stages), flags).out;
      if (!result.completed) {
        // Stopped after a checkpoint (Ctrl-C: exit 130; --stop-after: 0); the progress line says how to resume.
        if (result.interrupted) process.exitCode = 130;
        return;
      }
      process.stderr.write(
        `metrics: ${resolve(out, 'metrics.json')}, loss curve: ${resolve(out, 'loss.png')}\n`,
      );
      for (const dir of result.exported) process.stderr.write(`wrote ${dir}\n`);
    });
}
