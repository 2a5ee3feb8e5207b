// Messages between the page (main.ts) and the generation worker (worker.ts), and the checks on a run's settings
// that both sides apply (the page before it starts the worker, so bad input never gets as far as a download).
import type { DownloadProgress } from '../../../src/io/fetch_loader.js';

export type BackendChoice = 'auto' | 'webgpu' | 'wasm';

export interface RunSettings {
  prompt: string;
  seed: number;
  steps: number;
  frames: number;
  backend: BackendChoice;
  /** URL of the model folder (holds files.json). */
  modelUrl: string;
}

export const LIMITS = { frames: [1, 32], steps: [1, 100], seed: [0, 2 ** 31 - 1] } as const;
/** What `kinema generate` uses for the default model (src/cli/generate.ts DEFAULT_MODEL_SETTINGS). */
export const DEFAULTS = {
  seed: 0,
  steps: 25,
  frames: 16,
  width: 64,
  height: 64,
  guidance: 9,
  fps: 8,
} as const;

export type ToWorker = { type: 'run'; settings: RunSettings };

export interface Preview {
  width: number;
  height: number;
  /** RGBA of the frames side by side (a strip `frames` previews wide). */
  rgba: Uint8ClampedArray;
}

export interface RunResult {
  frames: Uint8Array[];
  width: number;
  height: number;
  backend: string;
  msPerStep: number;
  totalMs: number;
  /** The encoded video, or null where WebCodecs has no encoder (then `pngs` holds the frames). */
  video: { blob: Blob; mimeType: string; codec: string } | null;
  pngs: Blob[];
}

export type FromWorker =
  | { type: 'download'; progress: DownloadProgress }
  | { type: 'status'; text: string }
  | { type: 'backend'; backend: string; detail: string }
  | { type: 'step'; index: number; total: number; ms: number; preview: Preview }
  | { type: 'done'; result: RunResult }
  | { type: 'error'; code: string; message: string };

/** The first problem with a run's settings, as a sentence for the page, or null. */
export function checkSettings(s: RunSettings): { code: string; message: string } | null {
  const inRange = (v: number, [lo, hi]: readonly [number, number]): boolean =>
    Number.isInteger(v) && v >= lo && v <= hi;
  if (s.prompt.trim() === '')
    return { code: 'EMPTY_PROMPT', message: 'The prompt is empty: describe the video.' };
  if (!inRange(s.frames, LIMITS.frames))
    return {
      code: 'FRAMES_OUT_OF_RANGE',
      message: `Frames must be a whole number from ${LIMITS.frames[0]} to ${LIMITS.frames[1]}, got "${s.frames}".`,
    };
  if (!inRange(s.steps, LIMITS.steps))
    return {
      code: 'STEPS_OUT_OF_RANGE',
      message: `Steps must be a whole number from ${LIMITS.steps[0]} to ${LIMITS.steps[1]}, got "${s.steps}".`,
    };
  if (!inRange(s.seed, LIMITS.seed))
    return {
      code: 'SEED_OUT_OF_RANGE',
      message: `The seed must be a whole number from 0 to ${LIMITS.seed[1]}, got "${s.seed}".`,
    };
  if (!['auto', 'webgpu', 'wasm'].includes(s.backend))
    return { code: 'BAD_BACKEND', message: `The backend must be auto, webgpu or wasm, got "${s.backend}".` };
  return null;
}
