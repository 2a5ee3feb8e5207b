// Reading Hugging Face model folders (diffusers and transformers layouts): config.json, model_index.json,
// component sub-folders and safetensors weights (single file, variant file or sharded with an index JSON).
// Weights are upcast to float32 on the CPU at load time; keys can be renamed or dropped at this boundary.
// Files are read through a FileLoader (the disk in Node, a fetched folder in a browser).
import { parseJsonLenient } from './json.js';
import { joinPath as join, resolveLoader } from './loader.js';
import type { FileLoader } from './loader.js';
import { SafetensorsFile } from './safetensors_format.js';
import { KinemaError } from '../errors.js';

/** A model folder (or one of its files) is missing, unreadable or inconsistent; the message names it. */
export class ModelLoadError extends KinemaError {
  constructor(message: string, code = 'MODEL_LOAD_FAILED') {
    super(code, message);
    this.name = 'ModelLoadError';
  }
}

export type WeightsVariant = 'fp16' | 'bf16';

export interface WeightsOptions {
  /**
   * Which precision variant may be used when the folder has no plain (full-precision) weights file.
   * `undefined` (default): plain, else fp16, else bf16. `'fp16'`/`'bf16'`: plain, else that variant.
   * `null`: the plain file only.
   */
  variant?: WeightsVariant | null;
  /** Where the files are read from (default: the platform's, i.e. the file system in Node). */
  loader?: FileLoader;
}

export interface LoadStateDictOptions extends WeightsOptions {
  /** Renames a checkpoint key (return the new name) or drops it (return null). */
  keyMap?: (key: string) => string | null;
}

export interface LoadedStateDict {
  stateDict: Map<string, Float32Array>;
  shapes: Map<string, number[]>;
  /** The dtype each tensor had in the file (e.g. 'F16'), before the upcast to float32. */
  dtypes: Map<string, string>;
}

const WEIGHT_BASENAMES = ['diffusion_pytorch_model', 'model'] as const;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readJsonObject(path: string, what: string, loader?: FileLoader): Record<string, unknown> {
  let text: string;
  try {
    text = resolveLoader(loader).readText(path);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const reason = code === 'ENOENT' ? 'file not found' : (err as Error).message;
    throw new ModelLoadError(`cannot read ${what} ${path}: ${reason}`);
  }
  let value: unknown;
  try {
    value = parseJsonLenient(text, path);
  } catch (err) {
    throw new ModelLoadError(`${what} ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(value)) throw new ModelLoadError(`${what} ${path} must hold a JSON object`);
  return value;
}

function requireDirectory(dir: string, what: string, loader: FileLoader): void {
  const kind = loader.kind(dir);
  if (kind === null) throw new ModelLoadError(`${what} ${dir} does not exist`);
  if (kind !== 'dir') throw new ModelLoadError(`${what} ${dir} is not a folder`);
}

/** `dir/config.json` as an object (NaN/Infinity literals accepted). */
export function readConfig(dir: string, loader?: FileLoader): Record<string, unknown> {
  return readJsonObject(join(dir, 'config.json'), 'model config', loader);
}

/** `root/model_index.json` of a pipeline folder: component name → [library, class name], plus metadata. */
export function readModelIndex(dir: string, loader?: FileLoader): Record<string, [string, string] | unknown> {
  return readJsonObject(join(dir, 'model_index.json'), 'pipeline index', loader);
}

/** The folder of pipeline component `name` (e.g. 'unet', 'vae', 'text_encoder') under `root`. */
export function componentDir(root: string, name: string, loader?: FileLoader): string {
  const files = resolveLoader(loader);
  requireDirectory(root, 'pipeline folder', files);
  const dir = join(root, name);
  if (files.kind(dir) === null) {
    const present = files
      .list(root)
      .filter((e) => e.isDir)
      .map((e) => e.name);
    throw new ModelLoadError(
      `pipeline folder ${root} has no component folder '${name}' (sub-folders: ${present.join(', ') || 'none'})`,
    );
  }
  requireDirectory(dir, `component '${name}'`, files);
  return dir;
}

/** diffusers' `_add_variant`: the variant goes before the last extension (`model.fp16.safetensors`). */
function withVariant(fileName: string, variant: WeightsVariant | null): string {
  if (variant === null) return fileName;
  const parts = fileName.split('.');
  parts.splice(parts.length - 1, 0, variant);
  return parts.join('.');
}

function variantOrder(opts: WeightsOptions): (WeightsVariant | null)[] {
  if (opts.variant === null) return [null];
  if (opts.variant === undefined) return [null, 'fp16', 'bf16'];
  return [null, opts.variant];
}

/**
 * The weights file to load from `dir`: `diffusion_pytorch_model[.variant].safetensors` or
 * `model[.variant].safetensors`, or the matching `*.safetensors.index[.variant].json` of a sharded checkpoint.
 * The plain (full-precision) file is preferred over a variant. Folders with only PyTorch `.bin` weights are
 * rejected: only safetensors is supported.
 */
export function findWeightsFile(dir: string, opts: WeightsOptions = {}): string {
  const files = resolveLoader(opts.loader);
  requireDirectory(dir, 'model folder', files);
  for (const variant of variantOrder(opts)) {
    for (const base of WEIGHT_BASENAMES) {
      const single = join(dir, withVariant(`${base}.safetensors`, variant));
      if (files.kind(single) !== null) return single;
      const index = join(dir, withVariant(`${base}.safetensors.index.json`, variant));
      if (files.kind(index) !== null) return index;
    }
  }
  const present = files.list(dir).map((e) => e.name);
  const bins = present.filter(
    (f) => f.endsWith('.bin') || f.endsWith('.bin.index.json') || f.endsWith('.ckpt'),
  );
  if (bins.length > 0) {
    throw new ModelLoadError(
      `model folder ${dir} has only PyTorch pickle weights (${bins.join(', ')}); only .safetensors weights are ` +
        `supported (convert them, e.g. with save_pretrained(..., safe_serialization=True))`,
    );
  }
  const wanted = variantOrder(opts)
    .map((v) => withVariant('{diffusion_pytorch_model,model}.safetensors', v))
    .join(' or ');
  throw new ModelLoadError(
    `model folder ${dir} has no weights file: looked for ${wanted} (or a sharded .safetensors.index.json); ` +
      `files present: ${present.join(', ') || 'none'}`,
  );
}

/** The shard files of a sharded checkpoint, each with the keys its index assigns to it. */
function readShardIndex(indexPath: string, dir: string, loader: FileLoader): Map<string, string[]> {
  const index = readJsonObject(indexPath, 'weights index', loader);
  const weightMap = index['weight_map'];
  if (!isPlainObject(weightMap)) {
    throw new ModelLoadError(`weights index ${indexPath} has no "weight_map" object`);
  }
  const shards = new Map<string, string[]>();
  for (const [key, file] of Object.entries(weightMap)) {
    if (typeof file !== 'string' || file.includes('/') || file.includes('\\') || file.startsWith('.')) {
      throw new ModelLoadError(`weights index ${indexPath}: entry for '${key}' is not a file name in ${dir}`);
    }
    const keys = shards.get(file) ?? [];
    keys.push(key);
    shards.set(file, keys);
  }
  if (shards.size === 0) throw new ModelLoadError(`weights index ${indexPath} lists no tensors`);
  return shards;
}

function addTensor(
  out: LoadedStateDict,
  file: SafetensorsFile,
  name: string,
  keyMap: LoadStateDictOptions['keyMap'],
): void {
  const key = keyMap ? keyMap(name) : name;
  if (key === null) return;
  if (out.stateDict.has(key)) {
    throw new ModelLoadError(`${file.path}: tensor '${name}' maps to key '${key}', which is already loaded`);
  }
  const info = file.info(name);
  out.stateDict.set(key, file.readFloat32(name));
  out.shapes.set(key, info.shape);
  out.dtypes.set(key, info.dtype);
}

function loadFile(
  out: LoadedStateDict,
  path: string,
  names: string[] | null,
  opts: LoadStateDictOptions,
): void {
  const file = SafetensorsFile.open(path, opts.loader);
  try {
    for (const name of names ?? file.names()) {
      if (!file.has(name)) {
        throw new ModelLoadError(
          `${path}: the weights index assigns tensor '${name}' to this shard, but it is absent`,
        );
      }
      addTensor(out, file, name, opts.keyMap);
    }
  } finally {
    file.close();
  }
}

/**
 * Loads the weights of a model folder as float32 (F16/BF16/F64/… are converted on the CPU).
 * Keys are the checkpoint's own names unless `keyMap` renames (or drops, with null) them.
 */
export function loadStateDict(dir: string, opts: LoadStateDictOptions = {}): LoadedStateDict {
  const path = findWeightsFile(dir, opts);
  const out: LoadedStateDict = { stateDict: new Map(), shapes: new Map(), dtypes: new Map() };
  if (!path.endsWith('.json')) {
    loadFile(out, path, null, opts);
    return out;
  }
  const files = resolveLoader(opts.loader);
  for (const [shard, names] of readShardIndex(path, dir, files)) {
    const shardPath = join(dir, shard);
    if (files.kind(shardPath) === null) {
      throw new ModelLoadError(`weights index ${path} names shard ${shard}, which is missing from ${dir}`);
    }
    loadFile(out, shardPath, names, opts);
  }
  return out;
}
