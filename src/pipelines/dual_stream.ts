// DSDN text-to-video (Liu et al. 2023): two diffusion processes on one schedule — content frames (each an
// image, denoised by the frozen UNet as an image model plus the content increment unit) and motion features
// (frame differences, denoised by the UNet as a 3-d model plus the motion increment unit) — whose UNets attend
// to each other between blocks; at the end the motion combiner rebuilds the frame latents from both and the VAE
// decodes them. One compiled program per step runs both streams for the (uncond, cond) pair with guidance.
// A pipeline folder: the base's components (tokenizer/, text_encoder/, vae/, scheduler/, unet/) + dsdn/
// (config.json, the increment units' and interaction blocks' weights) + model_index.json naming this class.
import type { Tensor } from '../engine/tensor.js';
import * as op from '../engine/ops.js';
import { hostTensor } from '../engine/runtime.js';
import type { ExecutionProvider, HostTensor } from '../engine/runtime.js';
import { Generator } from '../engine/random.js';
import { compileWithWeights } from '../nn/compile.js';
import type { CompiledFunction } from '../nn/compile.js';
import type { StateDict } from '../nn/module.js';
import { StateDictError } from '../nn/module.js';
import { attachLoRA } from '../nn/lora.js';
import type { LoRABranch } from '../nn/lora.js';
import { CLIPTokenizer } from '../models/clip/tokenizer.js';
import { CLIPTextModel } from '../models/clip/text_model.js';
import { UNet3DConditionModel } from '../models/unet3d/unet3d.js';
import { AutoencoderKL } from '../models/vae/autoencoder_kl.js';
import { DualStreamUNet, parseDualStreamConfig } from '../models/dsdn/dual_stream_unet.js';
import { combineMotion } from '../models/dsdn/motion.js';
import type { LatentShape } from '../models/dsdn/motion.js';
import { loadScheduler } from '../schedulers/index.js';
import type { Scheduler, SchedulerName } from '../schedulers/index.js';
import { ModelLoadError, loadStateDict, readConfig, readModelIndex } from '../io/model_folder.js';
import { joinPath as join, resolveLoader } from '../io/loader.js';
import type { FileLoader } from '../io/loader.js';
import { checkModelIndex, pipelineClass } from './model_index.js';
import { TextToVideoPipeline, concatBatch, postprocess } from './text_to_video.js';
import type { PipelineEvent, TextToVideoOptions } from './text_to_video.js';
import { KinemaError } from '../errors.js';

export interface DualStreamOptions extends TextToVideoOptions {
  /** λ_c, the content increment unit's strength (default 1; 0 = the frozen base alone). */
  contentScale?: number;
  /** λ_m, the motion increment unit's strength (default 1; 0 = the frozen base alone). */
  motionScale?: number;
  /** false: the two streams run without interaction blocks (the ablation). Default true. */
  interaction?: boolean;
  /** γ of the motion combiner (default: the config's). */
  combinerGamma?: number;
}

function checkScale(v: number | undefined, flag: string): number {
  const s = v ?? 1;
  if (!Number.isFinite(s))
    throw new KinemaError('GENERATE_BAD_OPTION', `${flag} must be a finite number, got ${String(v)}`);
  return s;
}

export class DualStreamPipeline {
  /** The single-stream pipeline on the same components (prompt encoding, decoding; the baseline). */
  readonly base: TextToVideoPipeline;
  private readonly programs = new Map<string, Promise<CompiledFunction>>();
  private scales = { content: 1, motion: 1 };

  constructor(
    base: TextToVideoPipeline,
    readonly model: DualStreamUNet,
    private readonly weights: StateDict,
    private readonly branches: { content: Map<string, LoRABranch>; motion: Map<string, LoRABranch> },
    /** The motion stream's own scheduler (multistep samplers keep per-trajectory state). */
    private readonly motionScheduler: Scheduler,
    readonly ep: ExecutionProvider = 'cpu',
  ) {
    this.base = base;
  }

  static async fromPretrained(
    dir: string,
    opts: { scheduler?: SchedulerName; ep?: ExecutionProvider; loader?: FileLoader } = {},
  ): Promise<DualStreamPipeline> {
    const files = resolveLoader(opts.loader);
    if (files.kind(dir) === null) throw new ModelLoadError(`model folder ${dir} does not exist`);
    const index = readModelIndex(dir, files);
    checkModelIndex(index, join(dir, 'model_index.json'));
    if (pipelineClass(index) !== 'DualStreamPipeline')
      throw new ModelLoadError(
        `${dir}: model_index.json does not name DualStreamPipeline`,
        'MODEL_UNKNOWN_CLASS',
      );
    for (const c of ['tokenizer', 'text_encoder', 'unet', 'vae', 'scheduler', 'dsdn'])
      if (files.kind(join(dir, c)) === null)
        throw new ModelLoadError(`${dir}: missing component folder ${c}`);
    const ld = opts.loader ? { loader: opts.loader } : {};
    const onEp = { ...ld, ...(opts.ep !== undefined && { ep: opts.ep }) };
    const [tokenizer, textEncoder, unet, vae, scheduler, motionScheduler] = await Promise.all([
      CLIPTokenizer.fromPretrained(join(dir, 'tokenizer'), ld),
      CLIPTextModel.fromPretrained(join(dir, 'text_encoder'), onEp),
      UNet3DConditionModel.fromPretrained(join(dir, 'unet'), ld),
      AutoencoderKL.fromPretrained(join(dir, 'vae'), onEp),
      loadScheduler(join(dir, 'scheduler'), opts.scheduler, opts.loader),
      loadScheduler(join(dir, 'scheduler'), opts.scheduler, opts.loader),
    ]);
    const cfgDir = join(dir, 'dsdn');
    const config = parseDualStreamConfig(readConfig(cfgDir, opts.loader), join(cfgDir, 'config.json'));
    const model = new DualStreamUNet(unet.config, config);
    const unit = (u: typeof config.contentLoRA) => ({ rank: u.rank, alpha: u.alpha, targets: u.targets });
    const content = attachLoRA(model.content, unit(config.contentLoRA)).branches;
    const motion = attachLoRA(model.motion, unit(config.motionLoRA)).branches;
    const own = loadStateDict(cfgDir, ld);
    const weights = DualStreamUNet.stateDictFrom(unet.stateDict, own.stateDict);
    try {
      model.validateStateDict(weights, { shapes: new Map([...own.shapes]) });
    } catch (e) {
      if (e instanceof StateDictError) throw new StateDictError(`${cfgDir}: ${e.message}`);
      throw e;
    }
    const base = new TextToVideoPipeline({ tokenizer, textEncoder, unet, vae, scheduler }, opts.ep ?? 'cpu');
    return new DualStreamPipeline(
      base,
      model,
      weights,
      { content, motion },
      motionScheduler,
      opts.ep ?? 'cpu',
    );
  }

  /** λ_c and λ_m: each branch's factor becomes λ·α/r (programs are recompiled when they change). */
  private setScales(content: number, motion: number): void {
    if (content === this.scales.content && motion === this.scales.motion) return;
    const set = (
      branches: Map<string, LoRABranch>,
      unit: { rank: number; alpha: number },
      l: number,
    ): void => {
      for (const b of branches.values()) b.scale = (l * unit.alpha) / unit.rank;
    };
    set(this.branches.content, this.model.config.contentLoRA, content);
    set(this.branches.motion, this.model.config.motionLoRA, motion);
    this.scales = { content, motion };
    this.programs.clear();
  }

  private program(
    shape: readonly number[],
    ctxShape: readonly number[],
    withFps: boolean,
    interact: boolean,
  ) {
    const key = `${shape.join(',')}|${ctxShape.join(',')}|${withFps}|${interact}`;
    let hit = this.programs.get(key);
    if (!hit) {
      const fn = (c: Tensor, m: Tensor, t: Tensor, ctx: Tensor, scale: Tensor, fps?: Tensor): Tensor[] => {
        const [co, mo] = this.model.forward(op.concat([c, c], 0), op.concat([m, m], 0), t, ctx, {
          ...(fps && { fps }),
          interact,
        });
        const guide = (x: Tensor): Tensor => {
          const [u, v] = op.chunk(x, 2, 0) as [Tensor, Tensor];
          return op.add(u, op.mul(op.sub(v, u), scale));
        };
        return [guide(co), guide(mo)];
      };
      const specs = [
        { name: 'content', shape },
        { name: 'motion', shape },
        { name: 'timestep', shape: [1] },
        { name: 'context', shape: [2, ...ctxShape.slice(1)] },
        { name: 'guidance', shape: [] },
        ...(withFps ? [{ name: 'fps', shape: [1] }] : []),
      ];
      hit = compileWithWeights(fn, specs, this.weights, { ep: this.ep });
      this.programs.set(key, hit);
      hit.catch(() => this.programs.delete(key));
    }
    return hit;
  }

  /** Runs both streams, yielding the same events as TextToVideoPipeline (step latents: the combined frames). */
  async *generate(o: DualStreamOptions): AsyncGenerator<PipelineEvent> {
    const { unet, scheduler } = this.base.components;
    this.setScales(checkScale(o.contentScale, 'content scale'), checkScale(o.motionScale, 'motion scale'));
    const gamma = o.combinerGamma ?? this.model.config.combinerGamma;
    const sigma = this.model.config.motionScale;
    const promptEmbeds = await this.base.encodePrompt(o.prompt);
    const negativePromptEmbeds = await this.base.encodePrompt(o.negativePrompt ?? '');
    yield { kind: 'encoded', promptEmbeds, negativePromptEmbeds };
    const gen = new Generator(o.seed ?? 0);
    // The motion features start from the seed's video noise; the content frames from one noise image shared by
    // all frames (as trained: the frames' differences come from the motion stream through the interaction).
    const motionStart = this.base.prepareLatents(o, gen);
    const shape = motionStart.shape as unknown as LatentShape;
    const [, c, f, h, w] = shape;
    const image = gen.normal(c * h * w);
    const content = new Float32Array(motionStart.data.length);
    for (let ci = 0; ci < c; ci++)
      for (let fi = 0; fi < f; fi++)
        for (let k = 0; k < h * w; k++)
          content[(ci * f + fi) * h * w + k] = image[ci * h * w + k]! * scheduler.initNoiseSigma;
    let cl: Float32Array = content;
    let ml = motionStart.data as Float32Array;
    const ctx = concatBatch(negativePromptEmbeds, promptEmbeds);
    const withFps = unet.config.fpsCond === true;
    const run = await this.program(shape, ctx.shape, withFps, o.interaction !== false);
    const steps = o.numInferenceSteps ?? 25;
    scheduler.setTimesteps(steps);
    this.motionScheduler.setTimesteps(steps);
    const guidance = hostTensor(Float32Array.of(o.guidanceScale ?? 9.0), []);
    const total = scheduler.timesteps.length;
    for (const [index, t] of scheduler.timesteps.entries()) {
      const feeds: Record<string, HostTensor> = {
        content: hostTensor(scheduler.scaleModelInput(cl, t), [...shape]),
        motion: hostTensor(this.motionScheduler.scaleModelInput(ml, t), [...shape]),
        timestep: hostTensor(Float32Array.of(t), [1]),
        context: ctx,
        guidance,
      };
      if (withFps) feeds['fps'] = hostTensor(Float32Array.of(o.fps ?? 8), [1]);
      const out = await run.exe.run(feeds);
      const eta = { eta: o.eta ?? 0, generator: gen };
      cl = scheduler.step(out['out0']!.data as Float32Array, t, cl, eta).prevSample;
      ml = this.motionScheduler.step(out['out1']!.data as Float32Array, t, ml, eta).prevSample;
      const latents = hostTensor(combineMotion(cl, ml, shape, sigma, gamma), [...shape]);
      yield { kind: 'step', index, total, timestep: t, latents };
    }
    const video = await this.base.decodeLatents(
      hostTensor(combineMotion(cl, ml, shape, sigma, gamma), [...shape]),
      o.decodeBatchSize,
    );
    yield { kind: 'decoded', video };
    yield { kind: 'done', ...postprocess(video) };
  }
}
