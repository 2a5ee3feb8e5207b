// A generic training loop over Kinema's engine: the model's loss is traced once, differentiated by
// `valueAndGrad` into one forward+backward program (parameters as graph inputs), and run by ONNX Runtime
// every step; AdamW, clipping, EMA and checkpoints happen on the host. Batches must be a deterministic
// function of the step index so that a resumed run continues the identical loss curve.
import type { Program } from '../engine/ir.js';
import { valueAndGrad } from '../engine/autodiff.js';
import type { InputSpec, Tensor } from '../engine/tensor.js';
import { compile, hostTensor } from '../engine/runtime.js';
import type { Executable, ExecutionProvider, HostTensor } from '../engine/runtime.js';
import type { Module, StateDict } from '../nn/module.js';
import { AdamW, clipGradNorm } from './adamw.js';
import type { AdamWOptions } from './adamw.js';
import { EMA } from './ema.js';
import { loadLatestCheckpoint, saveCheckpoint } from './checkpoint.js';
import type { LrSchedule } from './lr_schedule.js';
import { KinemaError } from '../errors.js';

export interface StepResult {
  readonly loss: number;
  readonly grads: Map<string, Float32Array>;
  readonly aux: Record<string, HostTensor>;
}

/** One compiled forward+backward program for a model and a batch shape. */
export class GradStep {
  private constructor(
    readonly program: Program,
    private readonly exe: Executable,
    readonly paramNames: readonly string[],
    private readonly frozen: StateDict | null,
  ) {}

  /**
   * `frozen`: weights fed as fixed values, with no gradient (fine-tuning a part of a model); then only the
   * weights named in `trainable` are differentiated and must be in the `params` given to `run`.
   */
  static async create(
    lossFn: (batch: Record<string, Tensor>) => Tensor | Record<string, Tensor>,
    batchSpecs: readonly InputSpec[],
    opts: {
      ep?: ExecutionProvider;
      threads?: number;
      frozen?: StateDict;
      trainable?: readonly string[];
    } = {},
  ): Promise<GradStep> {
    const { frozen, trainable, ...runtime } = opts;
    const program = valueAndGrad(
      (...args) => lossFn(Object.fromEntries(batchSpecs.map((s, i) => [s.name, args[i]!]))),
      batchSpecs,
      frozen && trainable ? { wrt: trainable } : {},
    );
    const paramNames =
      frozen && trainable
        ? [...trainable]
        : program.inputs.filter((i) => i.role === 'weight').map((i) => i.name);
    return new GradStep(program, await compile(program, runtime), paramNames, frozen ?? null);
  }

  async run(params: StateDict, batch: Readonly<Record<string, HostTensor>>): Promise<StepResult> {
    const feeds: Record<string, HostTensor> = { ...batch };
    for (const inp of this.program.inputs) {
      if (inp.role !== 'weight') continue;
      const v = params.get(inp.name) ?? this.frozen?.get(inp.name);
      if (!v) throw new KinemaError('ENGINE_BAD_FEED', `no value for parameter '${inp.name}'`);
      feeds[inp.name] = hostTensor(v, inp.v.shape, 'float32');
    }
    const out = await this.exe.run(feeds);
    const grads = new Map<string, Float32Array>();
    const aux: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(out)) {
      if (name.startsWith('grad/')) grads.set(name.slice(5), t.data as Float32Array);
      else aux[name] = t;
    }
    const loss = (out['loss']!.data as Float32Array)[0]!;
    return { loss, grads, aux };
  }
}

export interface TrainOptions {
  readonly model: Module;
  readonly step: GradStep;
  /** The batch for a given step (deterministic in the step index). */
  readonly batch: (step: number) => Record<string, HostTensor> | Promise<Record<string, HostTensor>>;
  readonly totalSteps: number;
  readonly optimizer: AdamWOptions;
  /** Per-parameter multiplier of the learning rate (default 1 for all). */
  readonly lrScale?: (name: string) => number;
  readonly lr?: LrSchedule;
  readonly clipNorm?: number;
  readonly ema?: { decay: number; warmup?: boolean };
  /** Checkpoint folder; resumes from its latest checkpoint when present. */
  readonly checkpointDir?: string;
  readonly checkpointEvery?: number;
  readonly keepLast?: number;
  readonly seed?: number;
  /** Called after every step; return false to stop early (the state is checkpointed first). */
  readonly onStep?: (info: { step: number; loss: number; lr: number; gradNorm: number }) => boolean | void;
  /** Extra metadata saved in checkpoints (e.g. the model config). */
  readonly extra?: Record<string, unknown>;
  /** Starting parameters of a new run (fine-tuning); ignored when resuming from a checkpoint. */
  readonly initParams?: StateDict;
}

export interface TrainResult {
  readonly params: StateDict;
  readonly ema?: EMA;
  readonly losses: number[];
  readonly startStep: number;
  readonly endStep: number;
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const resumed = opts.checkpointDir ? loadLatestCheckpoint(opts.checkpointDir) : null;
  const params: StateDict = resumed
    ? resumed.params
    : opts.initParams
      ? new Map([...opts.initParams].map(([k, v]) => [k, v.slice()]))
      : opts.model.initParameters(opts.seed ?? 0);
  if (resumed || opts.initParams) opts.model.validateStateDict(params);
  const optimizer = resumed?.optimizer ?? new AdamW(opts.optimizer);
  const ema = opts.ema ? (resumed?.ema ?? new EMA(params, opts.ema)) : undefined;
  const startStep = resumed?.step ?? 0;
  const losses: number[] = [];
  const save = (step: number): void => {
    if (!opts.checkpointDir) return;
    saveCheckpoint(
      opts.checkpointDir,
      { step, params, optimizer, ...(ema ? { ema } : {}), ...(opts.extra ? { extra: opts.extra } : {}) },
      { keepLast: opts.keepLast ?? 2 },
    );
  };
  let step = startStep;
  while (step < opts.totalSteps) {
    const { loss, grads } = await opts.step.run(params, await opts.batch(step));
    if (!Number.isFinite(loss))
      throw new KinemaError('TRAIN_DIVERGED', `training diverged: loss is ${loss} at step ${step}`);
    const gradNorm = opts.clipNorm ? clipGradNorm(grads, opts.clipNorm) : Number.NaN;
    const lr = opts.lr ? opts.lr(step) : opts.optimizer.lr;
    optimizer.step(params, grads, lr, opts.lrScale);
    ema?.update(params);
    losses.push(loss);
    step++;
    const stop = opts.onStep?.({ step, loss, lr, gradNorm }) === false;
    if (stop || step === opts.totalSteps || (opts.checkpointEvery && step % opts.checkpointEvery === 0))
      save(step);
    if (stop) break;
  }
  return { params, ...(ema ? { ema } : {}), losses, startStep, endStep: step };
}
