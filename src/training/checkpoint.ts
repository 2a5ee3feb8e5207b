// Training checkpoints: one .safetensors file per save, `dir/ckpt-<step>.safetensors`, holding
//   params/<name>              parameters (F32, flat)
//   optim/exp_avg/<name>       AdamW first moments      optim/exp_avg_sq/<name>   second moments
//   ema/<name>                 EMA shadow parameters
// and in `__metadata__` (string values): format, step, param_names (JSON list, the caller's Map order, which
// loading restores since safetensors sorts keys), optimizer (JSON hyperparameters + step count), ema (JSON decay
// settings + update count), rng_state (Generator.getState()), extra (JSON).
// `dir/latest.json` names the newest file. Every file is written atomically (temp file + fsync + rename), and
// latest.json is only updated once the checkpoint is complete, so a crash never leaves a half checkpoint in use.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, type TensorToWrite, writeFileAtomic, writeSafetensors } from '../io/safetensors.js';
import { AdamW } from './adamw.js';
import { EMA } from './ema.js';
import { KinemaError } from '../errors.js';

const FORMAT = 'kinema-checkpoint-v1';
const LATEST = 'latest.json';
const CKPT_NAME = /^ckpt-(\d+)\.safetensors$/;

export interface CheckpointToSave {
  step: number;
  params: Map<string, Float32Array>;
  optimizer?: AdamW;
  ema?: EMA;
  /** Generator.getState() of the training RNG. */
  rngState?: string;
  /** Anything JSON-serializable (data-loader position, config, …). */
  extra?: Record<string, unknown>;
}

export interface LoadedCheckpoint {
  path: string;
  step: number;
  params: Map<string, Float32Array>;
  /** Rebuilt with the saved hyperparameters, moments and step count. */
  optimizer?: AdamW;
  /** Rebuilt with the saved decay settings, shadow parameters and update count. */
  ema?: EMA;
  rngState?: string;
  extra?: Record<string, unknown>;
}

export interface SaveCheckpointOptions {
  /** Keep only this many checkpoints (highest steps; the one just written always stays). */
  keepLast?: number;
}

interface OptimizerMetadata {
  step_count: number;
  lr: number;
  betas: [number, number];
  eps: number;
  weight_decay: number;
}

interface EmaMetadata {
  decay: number;
  warmup: boolean;
  optimization_step: number;
}

function flat(data: Float32Array): TensorToWrite {
  return { dtype: 'F32', shape: [data.length], data };
}

function buildMetadata(ckpt: CheckpointToSave): Record<string, string> {
  const metadata: Record<string, string> = {
    format: FORMAT,
    step: String(ckpt.step),
    param_names: JSON.stringify([...ckpt.params.keys()]),
  };
  if (ckpt.optimizer !== undefined) {
    const h = ckpt.optimizer.hyperparameters;
    const meta: OptimizerMetadata = {
      step_count: ckpt.optimizer.stepCount,
      lr: h.lr,
      betas: h.betas,
      eps: h.eps,
      weight_decay: h.weightDecay,
    };
    metadata.optimizer = JSON.stringify(meta);
  }
  if (ckpt.ema !== undefined) {
    const meta: EmaMetadata = {
      decay: ckpt.ema.decay,
      warmup: ckpt.ema.warmup,
      optimization_step: ckpt.ema.optimizationStep,
    };
    metadata.ema = JSON.stringify(meta);
  }
  if (ckpt.rngState !== undefined) metadata.rng_state = ckpt.rngState;
  if (ckpt.extra !== undefined) metadata.extra = JSON.stringify(ckpt.extra);
  return metadata;
}

function buildTensors(ckpt: CheckpointToSave): Map<string, TensorToWrite> {
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, p] of ckpt.params) tensors.set(`params/${name}`, flat(p));
  if (ckpt.optimizer !== undefined) {
    for (const [key, m] of ckpt.optimizer.stateDict()) tensors.set(`optim/${key}`, flat(m));
  }
  if (ckpt.ema !== undefined) {
    for (const [name, s] of ckpt.ema.shadow) tensors.set(`ema/${name}`, flat(s));
  }
  return tensors;
}

/** Writes `dir/ckpt-<step>.safetensors` and points `dir/latest.json` at it; returns the checkpoint path. */
export function saveCheckpoint(
  dir: string,
  ckpt: CheckpointToSave,
  opts: SaveCheckpointOptions = {},
): string {
  if (!Number.isSafeInteger(ckpt.step) || ckpt.step < 0) {
    throw new KinemaError(
      'TRAIN_CHECKPOINT_INVALID',
      `saveCheckpoint: step must be a non-negative integer, got ${ckpt.step}`,
    );
  }
  const keepLast = opts.keepLast;
  if (keepLast !== undefined && (!Number.isSafeInteger(keepLast) || keepLast < 1)) {
    throw new KinemaError(
      'TRAIN_CHECKPOINT_INVALID',
      `saveCheckpoint: keepLast must be a positive integer, got ${keepLast}`,
    );
  }
  mkdirSync(dir, { recursive: true });
  const file = `ckpt-${ckpt.step}.safetensors`;
  const path = join(dir, file);
  writeSafetensors(path, buildTensors(ckpt), buildMetadata(ckpt));
  writeFileAtomic(join(dir, LATEST), `${JSON.stringify({ step: ckpt.step, file })}\n`);
  if (keepLast !== undefined) pruneCheckpoints(dir, file, keepLast);
  return path;
}

function pruneCheckpoints(dir: string, keep: string, keepLast: number): void {
  const found = readdirSync(dir)
    .map((name) => ({ name, match: CKPT_NAME.exec(name) }))
    .filter((f) => f.match !== null)
    .map((f) => ({ name: f.name, step: Number(f.match![1]) }))
    .sort((a, b) => b.step - a.step);
  const kept = new Set(found.slice(0, keepLast).map((f) => f.name));
  kept.add(keep);
  for (const f of found) if (!kept.has(f.name)) rmSync(join(dir, f.name), { force: true });
}

/** Loads the checkpoint `dir/latest.json` names, or null when the folder has no latest.json. */
export function loadLatestCheckpoint(dir: string): LoadedCheckpoint | null {
  const latestPath = join(dir, LATEST);
  if (!existsSync(latestPath)) return null;
  let latest: unknown;
  try {
    latest = JSON.parse(readFileSync(latestPath, 'utf8'));
  } catch (e) {
    throw new KinemaError(
      'TRAIN_CHECKPOINT_INVALID',
      `${latestPath}: not valid JSON (${(e as Error).message})`,
    );
  }
  const file = (latest as { file?: unknown } | null)?.file;
  if (typeof file !== 'string' || !CKPT_NAME.test(file)) {
    throw new KinemaError(
      'TRAIN_CHECKPOINT_INVALID',
      `${latestPath}: expected {"step": n, "file": "ckpt-<n>.safetensors"}`,
    );
  }
  const path = join(dir, file);
  if (!existsSync(path))
    throw new KinemaError(
      'TRAIN_CHECKPOINT_INVALID',
      `${latestPath}: names ${file}, which does not exist in ${dir}`,
    );
  return loadCheckpoint(path);
}

function parseJsonField<T>(path: string, key: string, text: string | undefined): T | undefined {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new KinemaError(
      'TRAIN_CHECKPOINT_INVALID',
      `${path}: metadata "${key}" is not valid JSON (${(e as Error).message})`,
    );
  }
}

function readGroups(file: SafetensorsFile): Map<string, Map<string, Float32Array>> {
  const groups = new Map<string, Map<string, Float32Array>>([
    ['params', new Map()],
    ['optim', new Map()],
    ['ema', new Map()],
  ]);
  for (const key of file.names()) {
    const slash = key.indexOf('/');
    const group = groups.get(key.slice(0, Math.max(0, slash)));
    if (group === undefined)
      throw new KinemaError(
        'TRAIN_CHECKPOINT_INVALID',
        `${file.path}: unexpected tensor "${key}" in a checkpoint`,
      );
    const info = file.info(key);
    if (info.dtype !== 'F32')
      throw new KinemaError(
        'TRAIN_CHECKPOINT_INVALID',
        `${file.path}: tensor "${key}" is ${info.dtype}, expected F32`,
      );
    group.set(key.slice(slash + 1), file.readFloat32(key));
  }
  return groups;
}

/** Puts `tensors` in the saved parameter order (names not in the list keep their sorted order, after it). */
function inParamOrder(
  path: string,
  order: string[] | undefined,
  tensors: Map<string, Float32Array>,
): Map<string, Float32Array> {
  if (order === undefined) return tensors;
  if (!Array.isArray(order) || !order.every((n) => typeof n === 'string')) {
    throw new KinemaError(
      'TRAIN_CHECKPOINT_INVALID',
      `${path}: metadata "param_names" must be a JSON list of strings`,
    );
  }
  const out = new Map<string, Float32Array>();
  for (const name of order) {
    const t = tensors.get(name);
    if (t !== undefined) out.set(name, t);
  }
  for (const [name, t] of tensors) if (!out.has(name)) out.set(name, t);
  return out;
}

function restoreOptimizer(path: string, meta: OptimizerMetadata, state: Map<string, Float32Array>): AdamW {
  const optimizer = new AdamW({
    lr: meta.lr,
    betas: meta.betas,
    eps: meta.eps,
    weightDecay: meta.weight_decay,
  });
  try {
    optimizer.loadStateDict(state, meta.step_count);
  } catch (e) {
    throw new KinemaError('TRAIN_CHECKPOINT_INVALID', `${path}: optimizer state: ${(e as Error).message}`);
  }
  return optimizer;
}

function restoreEma(path: string, meta: EmaMetadata, shadow: Map<string, Float32Array>): EMA {
  const ema = new EMA(shadow, { decay: meta.decay, warmup: meta.warmup });
  try {
    ema.loadStateDict(shadow, meta.optimization_step);
  } catch (e) {
    throw new KinemaError('TRAIN_CHECKPOINT_INVALID', `${path}: EMA state: ${(e as Error).message}`);
  }
  return ema;
}

/** Loads one checkpoint file written by saveCheckpoint. */
export function loadCheckpoint(path: string): LoadedCheckpoint {
  const file = SafetensorsFile.open(path);
  try {
    const md = file.metadata;
    if (md.format !== FORMAT) {
      throw new KinemaError(
        'TRAIN_CHECKPOINT_INVALID',
        `${path}: not a Kinema checkpoint (metadata format is ${JSON.stringify(md.format)})`,
      );
    }
    const step = Number(md.step);
    if (md.step === undefined || !Number.isSafeInteger(step) || step < 0) {
      throw new KinemaError(
        'TRAIN_CHECKPOINT_INVALID',
        `${path}: metadata "step" ${JSON.stringify(md.step)} is not a non-negative integer`,
      );
    }
    const groups = readGroups(file);
    const order = parseJsonField<string[]>(path, 'param_names', md.param_names);
    const params = inParamOrder(path, order, groups.get('params')!);
    if (order !== undefined && (order.length !== params.size || order.some((n) => !params.has(n)))) {
      throw new KinemaError(
        'TRAIN_CHECKPOINT_INVALID',
        `${path}: metadata "param_names" does not match the stored params/ tensors`,
      );
    }
    const out: LoadedCheckpoint = { path, step, params };
    const optimMeta = parseJsonField<OptimizerMetadata>(path, 'optimizer', md.optimizer);
    if (optimMeta !== undefined) out.optimizer = restoreOptimizer(path, optimMeta, groups.get('optim')!);
    else if (groups.get('optim')!.size > 0)
      throw new KinemaError(
        'TRAIN_CHECKPOINT_INVALID',
        `${path}: optimizer tensors without "optimizer" metadata`,
      );
    const emaMeta = parseJsonField<EmaMetadata>(path, 'ema', md.ema);
    if (emaMeta !== undefined)
      out.ema = restoreEma(path, emaMeta, inParamOrder(path, order, groups.get('ema')!));
    else if (groups.get('ema')!.size > 0)
      throw new KinemaError('TRAIN_CHECKPOINT_INVALID', `${path}: EMA tensors without "ema" metadata`);
    if (md.rng_state !== undefined) out.rngState = md.rng_state;
    const extra = parseJsonField<Record<string, unknown>>(path, 'extra', md.extra);
    if (extra !== undefined) out.extra = extra;
    return out;
  } finally {
    file.close();
  }
}
