// Strict loading from a checkpoint that holds several models under prefixes (LVDM: `model.diffusion_model.*`,
// `first_stage_model.*`, `cond_stage_model.model.*`; StreamingT2V: `unet.*`, `base_model.*`, …): each model
// takes its keys by prefix (optionally renamed onto our names), and at the end every key must have been taken
// or explicitly ignored, so that a checkpoint of another architecture fails by name instead of half-loading.
import { KinemaError } from '../errors.js';

/** What the key map needs from a tensor file (TorchCheckpoint; SafetensorsFile through `safetensorsReader`). */
export interface TensorReader {
  readonly path: string;
  keys(): string[];
  info(key: string): { shape: number[] };
  readFloat32(key: string): Float32Array;
}

export interface TakenStateDict {
  stateDict: Map<string, Float32Array>;
  shapes: Map<string, number[]>;
}

function listSome(keys: readonly string[]): string {
  return `${keys.slice(0, 12).join(', ')}${keys.length > 12 ? ` (+${keys.length - 12} more)` : ''}`;
}

export class CheckpointKeyMap {
  readonly #unused: Set<string>;

  constructor(readonly reader: TensorReader) {
    this.#unused = new Set(reader.keys());
  }

  /**
   * The tensors under `prefix` as float32 state-dict entries keyed by the rest of the key, or by `rename(rest)`
   * (which returns undefined to leave a key for someone else). Every returned key is marked used.
   */
  take(prefix: string, rename: (rest: string) => string | undefined = (rest) => rest): TakenStateDict {
    const stateDict = new Map<string, Float32Array>();
    const shapes = new Map<string, number[]>();
    for (const key of this.reader.keys()) {
      if (!key.startsWith(prefix) || !this.#unused.has(key)) continue;
      const name = rename(key.slice(prefix.length));
      if (name === undefined) continue;
      if (stateDict.has(name)) {
        throw new KinemaError(
          'CKPT_KEY_MISMATCH',
          `${this.reader.path}: two checkpoint keys map onto "${name}" (the second is "${key}")`,
        );
      }
      stateDict.set(name, this.reader.readFloat32(key));
      shapes.set(name, this.reader.info(key).shape);
      this.#unused.delete(key);
    }
    return stateDict.size > 0 ? { stateDict, shapes } : this.#none(prefix);
  }

  /** One tensor by its full key (a buffer such as `betas`), marked used. */
  tensor(key: string): { data: Float32Array; shape: number[] } {
    if (!this.reader.keys().includes(key)) {
      throw new KinemaError('CKPT_KEY_MISMATCH', `${this.reader.path}: missing key "${key}"`);
    }
    this.#unused.delete(key);
    return { data: this.reader.readFloat32(key), shape: this.reader.info(key).shape };
  }

  /** Marks keys as deliberately unused (e.g. EMA copies), without reading them; returns how many. */
  ignore(match: (key: string) => boolean): number {
    let n = 0;
    for (const key of [...this.#unused]) {
      if (match(key)) {
        this.#unused.delete(key);
        n++;
      }
    }
    return n;
  }

  /** Keys nothing has taken yet. */
  unused(): string[] {
    return this.reader.keys().filter((k) => this.#unused.has(k));
  }

  /** Strictness: throws CKPT_KEY_MISMATCH naming the keys no model took. */
  assertAllUsed(what: string): void {
    const left = this.unused();
    if (left.length > 0) {
      throw new KinemaError(
        'CKPT_KEY_MISMATCH',
        `${this.reader.path}: ${left.length} keys are not part of ${what}: ${listSome(left)}`,
      );
    }
  }

  #none(prefix: string): never {
    const sample = this.reader.keys().slice(0, 8);
    throw new KinemaError(
      'CKPT_KEY_MISMATCH',
      `${this.reader.path}: no tensors under "${prefix}" (is this a checkpoint of another architecture? first keys: ${listSome(sample)})`,
    );
  }
}
