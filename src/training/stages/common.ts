// Plumbing shared by the training stages (`kinema train <stage>`): stage options and definitions, a progress
// bar that also shows the loss, the persisted loss history (so loss.png covers a run that was killed and
// resumed), loss.png / metrics.json outputs, and the call into the generic trainer with checkpoints in
// `<out>/checkpoints` (a re-run resumes from the latest one on the identical loss curve).
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { HostTensor } from '../../engine/runtime.js';
import { Generator } from '../../engine/random.js';
import type { Module, StateDict } from '../../nn/module.js';
import { SafetensorsFile, writeFileAtomic } from '../../io/safetensors.js';
import { Progress, type ProgressStream } from '../../cli/progress.js';
import { GradStep, train, type TrainResult } from '../trainer.js';
import { loadCheckpoint } from '../checkpoint.js';
import { cosineWithWarmup } from '../lr_schedule.js';
import { writeLossCurvePng } from '../loss_plot.js';
import { writeJsonAtomic } from '../export.js';
import { KinemaError } from '../../errors.js';
import type { UnetRecipeSettings } from './unet_recipe.js';

/** What the unet stage's UNet can learn to predict (`--prediction-type`). */
export const TRAIN_PREDICTIONS = ['epsilon', 'v_prediction'] as const;
export type TrainPrediction = (typeof TRAIN_PREDICTIONS)[number];

/** What every stage accepts (the `kinema train <stage>` flags). */
export interface StageOptions {
  /** Run folder: checkpoints/, loss.png, metrics.json, loss_history.json. */
  readonly out: string;
  /** Total optimizer steps of the run (a resumed run continues up to this count). */
  readonly steps: number;
  readonly batch: number;
  /** Peak learning rate (linear warmup, then cosine decay to 0). */
  readonly lr: number;
  readonly seed: number;
  /** ONNX Runtime intra-op threads (0 or undefined: its default). */
  readonly threads?: number;
  /** Pipeline folder (e.g. models/default) to write the trained component(s) into, as fp16. */
  readonly exportDir?: string;
  readonly checkpointEvery: number;
  /**
   * A checkpoint of the same stage (e.g. another run's ckpt-N.safetensors) whose weights (its EMA weights when
   * it has them) start a new run: fine-tuning. The unet stage also takes a pipeline folder (models/default).
   * Ignored when the run resumes from its own checkpoints.
   */
  readonly init?: string;
  /** unet stage: what the UNet learns to predict (default v_prediction); the CLI rejects it for other stages. */
  readonly predictionType?: TrainPrediction;
  /**
   * unet stage: fine-tune the text encoder together with the UNet (its weights start from the components'
   * text encoder and are exported with the UNet); the CLI rejects it for other stages.
   */
  readonly trainTextEncoder?: boolean;
  /**
   * unet stage with trainTextEncoder: weight of the text probe loss (caption attributes decoded linearly from
   * the text states); the CLI rejects it for other stages.
   */
  readonly textProbe?: number;
  /** unet stage with trainTextEncoder: the text encoder's (and probe's) learning rate over the UNet's. */
  readonly textLrScale?: number;
  /** unet stage: frames per training clip (default 8); the CLI rejects it for other stages. */
  readonly frames?: number;
  /**
   * unet stage: give the UNet's temporal transformers sinusoidal frame positions (config
   * `temporal_positions: "sinusoidal"`); the CLI rejects it for other stages.
   */
  readonly temporalPositions?: boolean;
  /**
   * unet stage: give the UNet's temporal transformers an attention to the text (config
   * `temporal_text_attention`); the CLI rejects it for other stages.
   */
  readonly temporalTextAttention?: boolean;
  /** unet stage: learning-rate multiple of the temporal text attention; the CLI rejects it for other stages. */
  readonly temporalTextLrScale?: number;
  /**
   * unet stage: fraction of the clips' noise variance shared by their frames (UNet config
   * `frame_noise_shared`); the CLI rejects it for other stages.
   */
  readonly frameNoiseShared?: number;
  /** unet stage: train on zero-terminal-SNR betas (v-prediction only); the CLI rejects it for other stages. */
  readonly zeroTerminalSnr?: boolean;
  /** unet stage: weight of the motion term (frame-varying part of the x₀ error); the CLI rejects it for other stages. */
  readonly motionWeight?: number;
  /**
   * unet stage: the start of a training clip's straight-line motion is drawn from this fraction (0, 1] of the
   * free room around the start that centres its track (the world's `trackCentring`); the CLI rejects it for
   * other stages.
   */
  readonly trackCentring?: number;
  /** unet stage: SD3's timestep shift of the training timesteps (>1: more high-noise samples). */
  readonly timestepShift?: number;
  /**
   * vae and unet stages: diffusers config keys laid over the stage's default model config (`kinema train
   * --config <file.json>`), e.g. a VAE with a spatial factor of 8; the CLI rejects it for the clip stage.
   */
  readonly configOverrides?: Readonly<Record<string, unknown>>;
  /** unet stage: the settings of a training recipe (`--config recipe.json`, `unet_recipe.ts`). */
  readonly unetSettings?: UnetRecipeSettings;
  /** vae-temporal stage: the pipeline folder whose VAE gets the temporal decoder; the CLI rejects it for others. */
  readonly base?: string;
  /** cam-apm stage: the CLIPModel folder whose vision tower embeds the anchor frames. */
  readonly clipModel?: string;
  /** lora stage: the adapter's rank r (default 4), α (default r: scale 1) and target layer-name suffixes. */
  readonly loraRank?: number;
  readonly loraAlpha?: number;
  readonly loraTargets?: readonly string[];
  /** lora stage: a folder of captioned clips (NAME.mp4 + NAME.txt) instead of the world. */
  readonly dataDir?: string;
  /** lora stage: train on world scenes with this kind of background only (a style adapter). */
  readonly worldBackground?: 'solid' | 'gradient' | 'stripes' | 'checker';
  /** Where progress and messages go (default process.stderr). */
  readonly log?: ProgressStream;
  /** Polled after every step; true checkpoints the current step and stops (the run can be resumed). */
  readonly shouldStop?: () => boolean;
}

export interface StageDefaults {
  readonly steps: number;
  readonly batch: number;
  readonly lr: number;
  readonly checkpointEvery: number;
}

export interface StageResult {
  /** True when the run reached `steps` (false when stopped early; re-run to resume). */
  readonly completed: boolean;
  /** Optimizer steps taken so far (over all sessions of the run). */
  readonly step: number;
  /** Loss of every step so far, step 1 first. */
  readonly losses: readonly number[];
  readonly metrics: Readonly<Record<string, unknown>>;
  /** Folders written by the export (empty without `exportDir` or when stopped early). */
  readonly exported: readonly string[];
}

export interface StageDefinition {
  readonly name: string;
  readonly summary: string;
  readonly defaults: StageDefaults;
  run(opts: StageOptions): Promise<StageResult>;
}

/** Writes one line to the stage's log stream. */
export function logLine(opts: Pick<StageOptions, 'log'>, message: string): void {
  (opts.log ?? process.stderr).write(`${message}\n`);
}

/** A generator seeded by (seed, purpose, index): batches that are a pure function of the step index. */
export function indexedGenerator(seed: number, purpose: number, index: number): Generator {
  return new Generator((BigInt(seed) << 40n) ^ (BigInt(purpose) << 32n) ^ BigInt(index));
}

type Feeds = Record<string, HostTensor>;

/**
 * Wraps a batch function (deterministic in the step index) so that the batch of step s + 1 is built while
 * step s runs in ONNX Runtime's threads; the batches themselves are unchanged. An asynchronous batch function
 * (one that runs programs itself, e.g. the VAE encoding clips) starts the next batch once the current one is
 * built, so at most one batch is being built at a time.
 */
export function prefetching(
  batch: (step: number) => Feeds | Promise<Feeds>,
): (step: number) => Promise<Feeds> {
  let next: { step: number; value: Promise<Feeds> } | null = null;
  return (step) => {
    const value = next?.step === step ? next.value : Promise.resolve().then(() => batch(step));
    const ahead = value.then(() => new Promise<void>((ok) => setImmediate(ok))).then(() => batch(step + 1));
    ahead.catch(() => undefined); // reported when (and if) that step asks for it
    next = { step: step + 1, value: ahead };
    return value;
  };
}

/** Progress bar (bar, rate, ETA) with the current smoothed loss appended. */
export class LossProgress extends Progress {
  private loss = Number.NaN;
  private smoothed = Number.NaN;
  private seen = 0;

  setLoss(loss: number): void {
    this.seen++;
    this.loss = loss;
    this.smoothed = this.seen === 1 ? loss : 0.95 * this.smoothed + 0.05 * loss;
  }

  override status(t?: number): string {
    const base = super.status(t);
    return Number.isFinite(this.loss)
      ? `${base} loss ${formatLoss(this.loss)} (avg ${formatLoss(this.smoothed)})`
      : base;
  }
}

export function formatLoss(v: number): string {
  return Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(4) : v.toExponential(3);
}

/** Loss and cumulative training seconds of every step, persisted as `<out>/loss_history.json`. */
export class LossHistory {
  private constructor(
    readonly path: string,
    readonly losses: number[],
    readonly seconds: number[],
  ) {}

  static load(out: string): LossHistory {
    const path = join(out, 'loss_history.json');
    if (!existsSync(path)) return new LossHistory(path, [], []);
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new KinemaError('TRAIN_BAD_SETTINGS', `${path}: not valid JSON (${(e as Error).message})`);
    }
    const { losses, seconds } = (raw ?? {}) as { losses?: unknown; seconds?: unknown };
    const numbers = (v: unknown): v is number[] =>
      Array.isArray(v) && v.every((x) => typeof x === 'number' || x === null);
    if (!numbers(losses) || !numbers(seconds) || losses.length !== seconds.length) {
      throw new KinemaError(
        'TRAIN_BAD_SETTINGS',
        `${path}: expected {"losses": [...], "seconds": [...]} of equal length`,
      );
    }
    const fix = (xs: (number | null)[]): number[] => xs.map((x) => (x === null ? Number.NaN : x));
    return new LossHistory(path, fix(losses), fix(seconds));
  }

  get totalSeconds(): number {
    return this.seconds.at(-1) ?? 0;
  }

  /** Keeps the first `steps` entries (a resumed run re-does the steps after its checkpoint). */
  truncate(steps: number): void {
    if (this.losses.length > steps) {
      this.losses.length = steps;
      this.seconds.length = steps;
    }
    while (this.losses.length < steps) {
      // History lost (e.g. the file was deleted): keep the step numbering with gaps.
      this.losses.push(Number.NaN);
      this.seconds.push(this.totalSeconds);
    }
  }

  push(loss: number, seconds: number): void {
    this.losses.push(loss);
    this.seconds.push(Math.round(seconds * 1000) / 1000);
  }

  save(): void {
    const nulls = (xs: number[]): (number | null)[] => xs.map((x) => (Number.isFinite(x) ? x : null));
    writeFileAtomic(this.path, JSON.stringify({ losses: nulls(this.losses), seconds: nulls(this.seconds) }));
  }
}

export interface TrainingRun {
  readonly opts: StageOptions;
  /** Progress label, e.g. 'clip'. */
  readonly label: string;
  readonly model: Module;
  readonly step: GradStep;
  readonly batch: (step: number) => Record<string, HostTensor> | Promise<Record<string, HostTensor>>;
  readonly warmupSteps: number;
  readonly weightDecay: number;
  readonly clipNorm?: number;
  readonly ema?: { decay: number; warmup?: boolean };
  /** Per-parameter multiplier of the learning rate (parameter groups); default 1. */
  readonly lrScale?: (name: string) => number;
  /** Saved in checkpoints (e.g. the model config). */
  readonly extra?: Record<string, unknown>;
  /**
   * The weights a new run starts from, given the `--init` weights (undefined without --init): lets a stage
   * complete them, e.g. with a pretrained component that the --init checkpoint did not train. Not called
   * when the run resumes from its own checkpoints.
   */
  readonly startWeights?: (init: StateDict | undefined) => StateDict;
  /**
   * The weights a new run starts from when `--init` names a folder (a pipeline folder the stage exported
   * into, e.g. models/default) instead of a checkpoint file; a stage without it takes checkpoint files only.
   */
  readonly initFromFolder?: (dir: string) => StateDict;
}

export interface TrainingOutcome {
  readonly result: TrainResult;
  readonly history: LossHistory;
  /** EMA weights when the run keeps an average, else the trained parameters. */
  readonly finalParams: StateDict;
  readonly completed: boolean;
}

/**
 * Refuses to resume a run whose latest checkpoint was made with a different setup (e.g. another model config):
 * `setup` must equal the checkpoint's saved `extra` in every key it has.
 */
export function checkResumable(out: string, setup: Record<string, unknown>): void {
  const latest = join(out, 'checkpoints', 'latest.json');
  if (!existsSync(latest)) return;
  const { file } = JSON.parse(readFileSync(latest, 'utf8')) as { file: string };
  const ckpt = SafetensorsFile.open(join(out, 'checkpoints', file));
  let saved: Record<string, unknown>;
  try {
    saved = JSON.parse(ckpt.metadata['extra'] ?? '{}') as Record<string, unknown>;
  } finally {
    ckpt.close();
  }
  for (const [key, value] of Object.entries(setup)) {
    if (JSON.stringify(saved[key]) !== JSON.stringify(value)) {
      throw new KinemaError(
        'TRAIN_BAD_SETTINGS',
        `${out} holds a run with a different ${key} (checkpoint: ${JSON.stringify(saved[key])}, now: ` +
          `${JSON.stringify(value)}); use another --out folder or delete ${join(out, 'checkpoints')}`,
      );
    }
  }
}

/**
 * Model-config keys that a fine-tuning run may switch on relative to its --init checkpoint: those that add no
 * parameters (Kinema's `temporal_positions`, `frame_noise_shared`), since the weights fit either way, and
 * `temporal_text_attention`, whose added parameters the stage initialises (`startWeights`) so that the new
 * branch starts as a no-op.
 */
const SWITCHABLE_CONFIG_KEYS = ['temporal_positions', 'frame_noise_shared', 'temporal_text_attention'];

/** A model config without its switchable keys (see SWITCHABLE_CONFIG_KEYS); other values are returned as is. */
export function withoutSwitchableKeys(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const rest: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const k of SWITCHABLE_CONFIG_KEYS) delete rest[k];
  return rest;
}

/**
 * The starting weights of a fine-tuning run (`opts.init`): the EMA (else raw) parameters of a checkpoint made
 * by the same stage with the same model config, or what the stage reads from a pipeline folder (asked only
 * when the run has no checkpoints of its own).
 */
function initialWeights(opts: StageOptions, run: TrainingRun): StateDict {
  const path = opts.init!;
  if (!existsSync(path)) throw new KinemaError('TRAIN_BAD_INIT', `--init: ${path} does not exist`);
  if (statSync(path).isDirectory()) {
    if (!run.initFromFolder)
      throw new KinemaError(
        'TRAIN_BAD_INIT',
        `--init: ${path} is a folder; the ${run.label} stage starts from a checkpoint file ` +
          '(<run>/checkpoints/ckpt-N.safetensors)',
      );
    const weights = run.initFromFolder(path);
    logLine(opts, `${run.label}: starting from the exported weights in ${path}`);
    return weights;
  }
  const ckpt = loadCheckpoint(path);
  const identity = Object.keys(run.extra ?? {}).filter((k) => k === 'stage' || k.endsWith('_config'));
  for (const key of identity) {
    const want = run.extra?.[key];
    if (
      JSON.stringify(withoutSwitchableKeys(ckpt.extra?.[key])) !== JSON.stringify(withoutSwitchableKeys(want))
    )
      throw new KinemaError(
        'TRAIN_BAD_INIT',
        `--init: ${path} was made with a different ${key} (${JSON.stringify(ckpt.extra?.[key])}, ` +
          `this run: ${JSON.stringify(want)})`,
      );
  }
  const weights = ckpt.ema ? ckpt.ema.stateDict() : ckpt.params; // the trainer validates them
  logLine(
    opts,
    `${run.label}: starting from the ${ckpt.ema ? 'EMA ' : ''}weights of ${path} (step ${ckpt.step})`,
  );
  return weights;
}

/** Trains (or resumes) with AdamW, warmup + cosine LR, checkpoints, a progress bar and the loss history. */
export async function runTraining(run: TrainingRun): Promise<TrainingOutcome> {
  const { opts } = run;
  mkdirSync(opts.out, { recursive: true });
  if (run.extra) checkResumable(opts.out, run.extra);
  const fresh = !existsSync(join(opts.out, 'checkpoints', 'latest.json'));
  const fromInit = fresh && opts.init ? initialWeights(opts, run) : undefined;
  const initParams = fresh && run.startWeights ? run.startWeights(fromInit) : fromInit;
  const history = LossHistory.load(opts.out);
  let bar: LossProgress | null = null;
  let offset = 0;
  const start = performance.now();
  const result = await train({
    model: run.model,
    step: run.step,
    batch: run.batch,
    totalSteps: opts.steps,
    optimizer: { lr: opts.lr, weightDecay: run.weightDecay },
    lr: cosineWithWarmup({ lr: opts.lr, warmupSteps: run.warmupSteps, totalSteps: opts.steps }),
    ...(run.clipNorm !== undefined && { clipNorm: run.clipNorm }),
    ...(run.lrScale && { lrScale: run.lrScale }),
    ...(run.ema && { ema: run.ema }),
    checkpointDir: join(opts.out, 'checkpoints'),
    checkpointEvery: opts.checkpointEvery,
    keepLast: 2,
    seed: opts.seed,
    ...(run.extra && { extra: run.extra }),
    ...(initParams && { initParams }),
    onStep: ({ step, loss }) => {
      if (bar === null) {
        history.truncate(step - 1);
        offset = history.totalSeconds;
        const resumed = step > 1 ? ` (resumed at step ${step - 1})` : '';
        bar = new LossProgress({
          label: `${run.label}${resumed}`,
          total: opts.steps - (step - 1),
          unit: 'steps',
          ...(opts.log && { stream: opts.log }),
        });
      }
      history.push(loss, offset + (performance.now() - start) / 1000);
      bar.setLoss(loss);
      bar.tick();
      const stop = opts.shouldStop?.() === true;
      if (stop || step === opts.steps || step % opts.checkpointEvery === 0) history.save();
      return !stop;
    },
  });
  const completed = result.endStep >= opts.steps;
  (bar as LossProgress | null)?.finish(
    completed ? '' : `stopped at step ${result.endStep}; run the same command again to resume`,
  );
  if (result.losses.length === 0) history.truncate(result.endStep);
  const finalParams = result.ema ? result.ema.stateDict() : result.params;
  return { result, history, finalParams, completed };
}

/**
 * Writes `<out>/loss.png` and `<out>/metrics.json`: the stage's metrics plus steps, batch, lr, seed, training
 * seconds and final_loss (the mean loss of the last final_loss_window steps: 10 %, at most 50).
 */
export async function writeRunReport(
  opts: StageOptions,
  title: string,
  history: LossHistory,
  metrics: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const finite = history.losses.filter((v) => Number.isFinite(v));
  const tail = finite.slice(-Math.max(1, Math.min(50, Math.floor(finite.length / 10))));
  const full = {
    steps: history.losses.length,
    batch: opts.batch,
    lr: opts.lr,
    seed: opts.seed,
    train_seconds: Math.round(history.totalSeconds * 10) / 10,
    final_loss: tail.length > 0 ? tail.reduce((a, b) => a + b, 0) / tail.length : null,
    final_loss_window: tail.length,
    ...metrics,
  };
  if (finite.length > 0) await writeLossCurvePng(join(opts.out, 'loss.png'), history.losses, { title });
  writeJsonAtomic(join(opts.out, 'metrics.json'), full);
  return full;
}

/** Mean seconds per optimizer step of a run's history (null before the first step), to the millisecond. */
export function secondsPerStep(history: LossHistory): number | null {
  const steps = history.losses.length;
  return steps > 0 ? Math.round((history.totalSeconds / steps) * 1000) / 1000 : null;
}

/** A stage's result from its training outcome, report metrics and exported paths. */
export function stageResult(
  outcome: TrainingOutcome,
  metrics: Readonly<Record<string, unknown>>,
  exported: readonly string[],
): StageResult {
  return {
    completed: outcome.completed,
    step: outcome.result.endStep,
    losses: outcome.history.losses,
    metrics,
    exported,
  };
}
