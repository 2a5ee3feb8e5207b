// Training the text encoder with the UNet: the joint parameter tree (`text_encoder.*` beside the UNet's own
// names), its split for export, and the text probe that keeps every caption attribute decodable from the states.
import * as op from '../../engine/ops.js';
import type { Tensor } from '../../engine/tensor.js';
import { ClipTextRoot } from '../../models/clip/text_model.js';
import type { ClipTextConfig } from '../../models/clip/config.js';
import { UNet3DConditionModel } from '../../models/unet3d/unet3d.js';
import { Module } from '../../nn/module.js';
import type { ParamSpec, StateDict } from '../../nn/module.js';
import { CAPTION_ATTRIBUTE_CLASSES, CAPTION_ATTRIBUTE_GROUPS } from '../data/caption_attributes.js';

/** Key prefix of the text encoder's weights in a run that fine-tunes it with the UNet. */
export const TEXT_ENCODER_PREFIX = 'text_encoder.';
/** Key prefix of the text probe's weights (trained, checkpointed, never exported). */
export const TEXT_PROBE_PREFIX = 'text_probe.';

/**
 * The parameters a run trains when it fine-tunes the text encoder too: the UNet's under their own names (as
 * in a UNet-only run, so `--init` accepts either kind of checkpoint) and the text encoder's (transformers'
 * `text_model.*` keys) under `text_encoder.`.
 */
export class UnetWithTextEncoder extends Module {
  readonly textEncoder: ClipTextRoot;
  /** The text probe (`text_probe.*`): caption attributes from the mean text state, when the run has one. */
  readonly probe: TextProbe | null;
  constructor(
    readonly unet: UNet3DConditionModel,
    textConfig: ClipTextConfig,
    opts: { probe?: boolean } = {},
  ) {
    super();
    this.textEncoder = this.child(TEXT_ENCODER_PREFIX.slice(0, -1), new ClipTextRoot(textConfig, false));
    this.probe =
      opts.probe === true
        ? this.child(TEXT_PROBE_PREFIX.slice(0, -1), new TextProbe(textConfig.hiddenSize))
        : null;
  }

  override namedParameters(prefix = ''): Map<string, ParamSpec> {
    const out = this.unet.namedParameters(prefix);
    for (const [k, spec] of super.namedParameters(prefix)) out.set(k, spec);
    return out;
  }
}

/** The UNet part and the text encoder part (keys without the prefix) of a run's weights; a probe's are left out. */
export function splitJointWeights(weights: StateDict): { unet: StateDict; textEncoder: StateDict } {
  const unet: StateDict = new Map();
  const textEncoder: StateDict = new Map();
  for (const [k, v] of weights) {
    if (k.startsWith(TEXT_ENCODER_PREFIX)) textEncoder.set(k.slice(TEXT_ENCODER_PREFIX.length), v);
    else if (!k.startsWith(TEXT_PROBE_PREFIX)) unet.set(k, v);
  }
  return { unet, textEncoder };
}

/** Scale of the text probe's cosine logits (fixed, so the probe cannot grow its way to confident answers). */
export const TEXT_PROBE_SCALE = 10;

/** The text probe: one weight row per attribute class, read as a cosine classifier of fixed scale. */
export class TextProbe extends Module {
  constructor(hidden: number) {
    super();
    this.declare('weight', [CAPTION_ATTRIBUTE_CLASSES, hidden], { kind: 'normal', std: 1 });
  }
  /** Logits [N, classes] of text states [N, T, D]: scale · cos(mean over T, class row). */
  forward(states: Tensor): Tensor {
    const pooled = op.l2Normalize(op.mean(states, [1]), 1, 1e-12);
    const classes = op.l2Normalize(this.p('weight'), 1, 1e-12);
    return op.mul(op.matmul(pooled, op.transpose(classes, [1, 0])), TEXT_PROBE_SCALE);
  }
}

/**
 * The text probe's loss: the mean over the batch of the summed cross-entropies of every attribute group a
 * caption names. The logits are cosines, times TEXT_PROBE_SCALE, between the text states [N, 77, D] averaged
 * over the positions and the rows of the probe's weight [classes, D]: a cosine classifier of fixed scale
 * cannot reach confident answers by growing its weights on a small difference, so the text states themselves
 * must point apart for captions that name different attributes. `targets` [N, classes] holds one-hot rows
 * per named group and zeros for the groups a caption leaves out.
 */
export function textProbeLoss(probe: TextProbe, states: Tensor, targets: Tensor): Tensor {
  const n = states.shape[0]!;
  const logits = probe.forward(states);
  const sizes = CAPTION_ATTRIBUTE_GROUPS.map((g) => g.classes.length);
  const parts = op.split(logits, sizes, 1);
  const wanted = op.split(targets, sizes, 1);
  const nll = parts.map((l, i) => {
    const logProb = op.sub(l, op.logSumExp(l, 1));
    return op.neg(op.sum(op.mul(logProb, wanted[i]!), [0, 1]));
  });
  return op.div(
    nll.reduce((x, y) => op.add(x, y)),
    n,
  );
}
