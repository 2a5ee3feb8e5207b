// DSDN's two diffusion streams in one traced forward (Liu et al. 2023, Fig. 2). Both base units are the same
// pretrained UNet3D weights, frozen:
//   content stream — the UNet run as an image model: every frame its own 1-frame sample (frames folded into the
//     batch, as the joint image–video training of the default model trained it), plus the content increment
//     unit (LoRA on `content.*`, λ_c);
//   motion stream — the UNet run as a 3-d model over the motion features (src/models/dsdn/motion.ts), plus the
//     motion increment unit (LoRA on `motion.*`, λ_m).
// Between their stages, interaction blocks (src/models/dsdn/interaction.ts) let each stream attend to the other
// at the sites named in the config (after the mid block, after each up block by default).
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import { Module, ModuleList } from '../../nn/module.js';
import type { StateDict } from '../../nn/module.js';
import { UNet3DConditionModel } from '../unet3d/unet3d.js';
import type { UNet3DConfig } from '../unet3d/config.js';
import { InteractionBlock } from './interaction.js';
import { KinemaError } from '../../errors.js';

export interface LoRAUnitConfig {
  readonly rank: number;
  readonly alpha: number;
  readonly targets: readonly string[];
}

export interface DualStreamConfig {
  /** σ_m: motion features are frame differences divided by this (so their scale is the latents'). */
  readonly motionScale: number;
  /** γ of the motion combiner. */
  readonly combinerGamma: number;
  /** Stage names after which an interaction block runs: 'mid_block', 'up_blocks.<i>'. */
  readonly interactionSites: readonly string[];
  readonly interactionHeads: number;
  readonly contentLoRA: LoRAUnitConfig;
  readonly motionLoRA: LoRAUnitConfig;
}

export const DEFAULT_INTERACTION_SITES = ['mid_block', 'up_blocks.0', 'up_blocks.1', 'up_blocks.2'] as const;

function fail(message: string): never {
  throw new KinemaError('DSDN_BAD_CONFIG', message);
}

function num(cfg: Record<string, unknown>, key: string, where: string): number {
  const v = cfg[key];
  if (typeof v !== 'number' || !Number.isFinite(v))
    fail(`${where}: "${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function loraUnit(v: unknown, where: string): LoRAUnitConfig {
  if (!v || typeof v !== 'object') fail(`${where} must be an object {rank, alpha, targets}`);
  const o = v as Record<string, unknown>;
  const rank = num(o, 'rank', where);
  if (!Number.isInteger(rank) || rank < 1) fail(`${where}: "rank" must be a positive integer, got ${rank}`);
  const targets = o['targets'];
  if (!Array.isArray(targets) || targets.length === 0 || !targets.every((t) => typeof t === 'string'))
    fail(`${where}: "targets" must be a non-empty list of layer-name suffixes`);
  return { rank, alpha: o['alpha'] === undefined ? rank : num(o, 'alpha', where), targets };
}

/** dsdn/config.json (snake_case, as the other component configs) → a checked config. */
export function parseDualStreamConfig(
  cfg: Record<string, unknown>,
  where = 'dsdn/config.json',
): DualStreamConfig {
  const motionScale = num(cfg, 'motion_scale', where);
  if (!(motionScale > 0)) fail(`${where}: "motion_scale" must be > 0, got ${motionScale}`);
  const combinerGamma = num(cfg, 'combiner_gamma', where);
  if (!(combinerGamma >= 0 && combinerGamma <= 1))
    fail(`${where}: "combiner_gamma" must be in [0, 1], got ${combinerGamma}`);
  const sites = cfg['interaction_sites'] ?? [...DEFAULT_INTERACTION_SITES];
  if (!Array.isArray(sites) || !sites.every((s) => typeof s === 'string'))
    fail(`${where}: "interaction_sites" must be a list of stage names`);
  const heads = cfg['interaction_heads'] === undefined ? 4 : num(cfg, 'interaction_heads', where);
  return {
    motionScale,
    combinerGamma,
    interactionSites: sites as string[],
    interactionHeads: heads,
    contentLoRA: loraUnit(cfg['content_lora'], `${where}: "content_lora"`),
    motionLoRA: loraUnit(cfg['motion_lora'], `${where}: "motion_lora"`),
  };
}

/** The config as written to dsdn/config.json. */
export function dualStreamConfigJson(c: DualStreamConfig): Record<string, unknown> {
  const unit = (u: LoRAUnitConfig) => ({ rank: u.rank, alpha: u.alpha, targets: [...u.targets] });
  return {
    _class_name: 'DualStreamModel',
    motion_scale: c.motionScale,
    combiner_gamma: c.combinerGamma,
    interaction_sites: [...c.interactionSites],
    interaction_heads: c.interactionHeads,
    content_lora: unit(c.contentLoRA),
    motion_lora: unit(c.motionLoRA),
  };
}

/** Channels of a stage's output features. */
function siteChannels(unet: UNet3DConfig, site: string): number {
  const ch = unet.blockOutChannels;
  if (site === 'mid_block') return ch[ch.length - 1]!;
  const m = /^up_blocks\.(\d+)$/.exec(site);
  const i = m ? Number(m[1]) : -1;
  if (i < 0 || i >= unet.upBlockTypes.length)
    fail(
      `DSDN: interaction site '${site}' is not 'mid_block' or 'up_blocks.<0…${unet.upBlockTypes.length - 1}>'`,
    );
  return [...ch].reverse()[i]!;
}

export interface DualStreamForwardOptions {
  fps?: Tensor;
  /** false: the streams run side by side without interaction (the ablation). Default true. */
  interact?: boolean;
}

export class DualStreamUNet extends Module {
  readonly content: UNet3DConditionModel;
  readonly motion: UNet3DConditionModel;
  readonly interaction: InteractionBlock[];
  constructor(
    readonly unetConfig: UNet3DConfig,
    readonly config: DualStreamConfig,
  ) {
    super();
    this.content = this.child('content', new UNet3DConditionModel(unetConfig));
    this.motion = this.child('motion', new UNet3DConditionModel(unetConfig));
    const sites = config.interactionSites;
    if (new Set(sites).size !== sites.length)
      fail(`DSDN: an interaction site is listed twice (${sites.join(', ')})`);
    this.interaction = sites.map(
      (s) => new InteractionBlock(siteChannels(unetConfig, s), config.interactionHeads),
    );
    this.child('interaction', new ModuleList(this.interaction));
  }

  /** The full state dict from the base UNet's weights (both streams) and the DSDN-only weights. */
  static stateDictFrom(base: StateDict, own: StateDict): StateDict {
    const sd: StateDict = new Map(own);
    for (const [k, v] of base) {
      sd.set(`content.${k}`, v);
      sd.set(`motion.${k}`, v);
    }
    return sd;
  }

  /**
   * content: noisy content latents [B, C, F, h, w] (each frame denoised as an image); motion: noisy motion
   * features [B, C, F, h, w]; timestep [B] (or [1]); text states [B, S, D]. Returns both streams' predictions.
   */
  forward(
    content: Tensor,
    motion: Tensor,
    timestep: Tensor,
    context: Tensor,
    opts: DualStreamForwardOptions = {},
  ): [Tensor, Tensor] {
    const [b, c, f, h, w] = content.shape as [number, number, number, number, number];
    if (motion.shape.join() !== content.shape.join())
      throw new KinemaError(
        'UNET_BAD_INPUT',
        `DSDN: content ${content.toString()} and motion ${motion.toString()} latents must have one shape`,
      );
    // Frames into the batch for the content stream: row b·F + f, the motion stream's folded row order.
    const perFrame = (x: Tensor): Tensor => {
      const shape = x.shape;
      const one = x.rank === 1 && shape[0] === 1 ? op.expand(x, [b]) : x;
      const rows = op.expand(op.reshape(one, [b, 1, ...shape.slice(1)]), [b, f, ...shape.slice(1)]);
      return op.reshape(rows, [b * f, ...shape.slice(1)]);
    };
    const frames = op.reshape(op.transpose(content, [0, 2, 1, 3, 4]), [b * f, c, 1, h, w]);
    const t = timestep.rank === 0 ? op.reshape(timestep, [1]) : timestep;
    const cs = this.content.begin(
      frames,
      perFrame(t),
      perFrame(context),
      opts.fps ? { fps: perFrame(opts.fps) } : {},
    );
    const ms = this.motion.begin(motion, t, context, opts.fps ? { fps: opts.fps } : {});
    const interact = (site: string): void => {
      const i = this.config.interactionSites.indexOf(site);
      if (i < 0 || opts.interact === false) return;
      [cs.hidden, ms.hidden] = this.interaction[i]!.forward(cs.hidden, ms.hidden);
    };
    this.content.down(cs);
    this.motion.down(ms);
    this.content.mid(cs);
    this.motion.mid(ms);
    interact('mid_block');
    for (let i = 0; i < this.content.upBlocks.length; i++) {
      this.content.up(cs, i);
      this.motion.up(ms, i);
      interact(`up_blocks.${i}`);
    }
    const co = this.content.end(cs); // [B·F, C, 1, h, w]
    const contentOut = op.transpose(op.reshape(co, [b, f, c, h, w]), [0, 2, 1, 3, 4]);
    return [contentOut, this.motion.end(ms)];
  }
}
