// `kinema generate --long naive|vidrd [--refine …]`: the long-video flags, parsed and checked before any model is
// loaded (every bad combination is a named KinemaError, so no work starts and no output file appears). The
// refine flags add StreamingT2V's enhancement stage (src/pipelines/long_video/refine.ts); their model-dependent
// checks (the --refiner folder, T' against its schedule) are in generate_checks.ts.
import { Command, InvalidArgumentError, Option } from 'commander';
import { KinemaError } from '../errors.js';
import { intOption, numberOption } from './options.js';
import { checkLongVideo, DEFAULT_CHUNK } from '../pipelines/long_video/chunked.js';
import type { ChunkPlan, LongVideoMode } from '../pipelines/long_video/chunked.js';
import { naiveMode } from '../pipelines/long_video/naive.js';
import { vidrdMode } from '../pipelines/vidrd.js';
import type { VidrdOptions } from '../pipelines/vidrd.js';
import { checkRefineLayout, REFINE_BLENDS, REFINE_DEFAULTS } from '../pipelines/long_video/refine.js';
import type { RefineBlend } from '../pipelines/long_video/refine.js';

export const LONG_MODES = ['naive', 'vidrd', 'streaming'] as const;
export type LongModeName = (typeof LONG_MODES)[number];

export interface LongVideoFlags {
  long?: LongModeName;
  chunk?: number;
  overlap?: number;
  fnr?: 'on' | 'off';
  pns?: number | 'off';
  dsg?: number[] | 'off';
  /** `kinema generate --latents`: one window's latents, which a long video cannot start from. */
  latents?: string;
  refine?: boolean;
  refiner?: string;
  refineStrength?: number;
  refineChunk?: number;
  refineOverlap?: number;
  refineBlend?: RefineBlend;
  /** --long streaming: the APM's anchor image (PNG); default the video's first frame. */
  anchor?: string;
}

/** `--long streaming` (StreamingT2V): its adapters are the model folder's, loaded with the weights. */
export interface StreamingRequest {
  /** `--anchor FILE.png` as given (decoded before any weights load, generate.ts). */
  readonly anchor: string | undefined;
  /** true when --long was not given and --frames is longer than one window (picked because adapters exist). */
  readonly implicit: boolean;
}

/** The enhancement stage a long video asks for (`--refine`). */
export interface RefineRequest {
  readonly chunk: number;
  readonly overlap: number;
  /** T' (checked against the refiner's schedule in generate_checks.ts). */
  readonly strength: number;
  readonly blend: RefineBlend;
  /** `--refiner DIR` as given; undefined: the generating model refines. */
  readonly refiner: string | undefined;
}

/** A checked long-video request: the mode and the chunk layout. */
export interface LongVideoRequest {
  /** The mode; null for --long streaming until the model folder's adapters are loaded (generate.ts). */
  readonly mode: LongVideoMode | null;
  readonly streaming: StreamingRequest | null;
  readonly chunk: number;
  readonly overlap: number;
  readonly plan: ChunkPlan;
  readonly refine: RefineRequest | null;
}

/** `--dsg 10,18` (stage boundaries in steps) or `--dsg off`. */
export function parseDsgStages(v: string): number[] | 'off' {
  if (v.trim() === 'off') return 'off';
  const parts = v.split(',').map((s) => s.trim());
  const stages = parts.map(Number);
  if (parts.some((s) => s === '') || !stages.every((n) => Number.isInteger(n) && n >= 1))
    throw new InvalidArgumentError(
      `--dsg must be 'off' or step boundaries like 10,18 (integers ≥ 1), got '${v}'`,
    );
  return stages;
}

function parsePns(v: string): number | 'off' {
  if (v.trim() === 'off') return 'off';
  return intOption('--pns', 1)(v);
}

/** Adds the long-video flags to `kinema generate`. */
export function addLongVideoOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--long <mode>',
        "long video, chunk by chunk: naive continuation, VidRD, or StreamingT2V (the model folder's streaming/ adapters; the default for --frames above one window when they exist)",
      ).choices([...LONG_MODES]),
    )
    .option(
      '--chunk <n>',
      `frames per chunk F, the model's window (default ${DEFAULT_CHUNK})`,
      intOption('--chunk', 1),
    )
    .option(
      '--overlap <n>',
      'frames each chunk shares with the one before, O < F (default F/2)',
      intOption('--overlap', 0),
    )
    .addOption(
      new Option('--fnr <on|off>', 'VidRD frame-level noise reversion (default on)').choices(['on', 'off']),
    )
    .option(
      '--pns <W>',
      "VidRD past-dependent noise: fresh-noise weight min(1, d/W) at d frames past the overlap, or 'off' (default W = F − O)",
      parsePns,
    )
    .option(
      '--dsg <stages>',
      "VidRD staged guidance: step boundaries of the held stages, e.g. 10,18, or 'off' (default 40 %,70 % of --steps)",
      parseDsgStages,
    )
    .option(
      '--anchor <file.png>',
      '--long streaming: the appearance anchor (a PNG of the output size; default the first frame)',
    )
    .option('--refine', "StreamingT2V's enhancement stage: SDEdit chunk by chunk with randomized blending")
    .option('--refiner <dir>', 'the model folder that refines (default: the generating model)')
    .option(
      '--refine-strength <T>',
      `--refine: the SDEdit start T', a timestep of the refiner's schedule (default ${REFINE_DEFAULTS.strength})`,
      numberOption('--refine-strength'),
    )
    .option(
      '--refine-chunk <n>',
      `--refine: frames per refine chunk (default ${REFINE_DEFAULTS.chunk})`,
      intOption('--refine-chunk', 1),
    )
    .option(
      '--refine-overlap <n>',
      `--refine: frames each refine chunk shares with the one before (default ${REFINE_DEFAULTS.overlap}, at most chunk − 1)`,
      intOption('--refine-overlap', 0),
    )
    .addOption(
      new Option(
        '--refine-blend <mode>',
        '--refine: random (shared noise + randomized blending, default), shared-noise or independent (ablations)',
      ).choices([...REFINE_BLENDS]),
    );
}

const REFINE_ONLY = ['refiner', 'refineStrength', 'refineChunk', 'refineOverlap', 'refineBlend'] as const;
const flagName = (k: string): string => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** The refine stage the flags ask for (layout checked), or null without --refine. */
function refineRequest(f: LongVideoFlags): RefineRequest | null {
  const extra = REFINE_ONLY.filter((k) => f[k] !== undefined);
  if (!f.refine) {
    if (extra.length > 0)
      throw new KinemaError(
        'REFINE_OPTION_WITHOUT_REFINE',
        `${flagName(extra[0]!)} configures the enhancement stage; add --refine`,
      );
    return null;
  }
  const chunk = f.refineChunk ?? REFINE_DEFAULTS.chunk;
  const overlap = f.refineOverlap ?? Math.min(REFINE_DEFAULTS.overlap, chunk - 1);
  checkRefineLayout(chunk, overlap);
  return {
    chunk,
    overlap,
    strength: f.refineStrength ?? REFINE_DEFAULTS.strength,
    blend: f.refineBlend ?? REFINE_DEFAULTS.blend,
    refiner: f.refiner,
  };
}

/** True when any long-video flag is given. */
export function wantsLongVideo(f: LongVideoFlags): boolean {
  return [f.long, f.chunk, f.overlap, f.fnr, f.pns, f.dsg, f.anchor].some((v) => v !== undefined);
}

/**
 * The mode and plan the flags ask for, checked against the frame and step counts (named errors before any
 * work); null when no long-video flag is given.
 */
export function longVideoRequest(f: LongVideoFlags, frames: number, steps: number): LongVideoRequest | null {
  if (f.refine && f.long === undefined)
    throw new KinemaError(
      'REFINE_NEEDS_LONG',
      '--refine enhances a long video chunk by chunk; add --long naive|vidrd|streaming',
    );
  const refine = refineRequest(f);
  if (!wantsLongVideo(f)) return null;
  if (f.long === undefined)
    throw new KinemaError(
      'LONG_MODE_MISSING',
      '--chunk, --overlap, --fnr, --pns, --dsg and --anchor need --long naive|vidrd|streaming',
    );
  if (f.latents !== undefined)
    throw new KinemaError(
      'LONG_WITH_LATENTS',
      '--latents gives one window of latents; it cannot start a --long video',
    );
  if (f.long !== 'vidrd') {
    const vidrdOnly = (['fnr', 'pns', 'dsg'] as const).filter((k) => f[k] !== undefined);
    if (vidrdOnly.length > 0)
      throw new KinemaError(
        'LONG_OPTION_FOR_OTHER_MODE',
        `--${vidrdOnly[0]} is a VidRD option; it needs --long vidrd, not --long ${f.long}`,
      );
  }
  if (f.anchor !== undefined && f.long !== 'streaming')
    throw new KinemaError(
      'LONG_OPTION_FOR_OTHER_MODE',
      `--anchor is a StreamingT2V option; it needs --long streaming, not --long ${f.long}`,
    );
  const chunk = f.chunk ?? DEFAULT_CHUNK;
  const overlap = f.overlap ?? Math.floor(chunk / 2);
  const vidrd: VidrdOptions = {
    ...(f.fnr !== undefined && { fnr: f.fnr === 'on' }),
    ...(f.pns !== undefined && { pns: f.pns === 'off' ? null : f.pns }),
    ...(f.dsg !== undefined && { dsg: f.dsg === 'off' ? null : f.dsg }),
  };
  const mode = f.long === 'naive' ? naiveMode() : f.long === 'vidrd' ? vidrdMode(vidrd) : null;
  const plan = checkLongVideo(
    { prompt: '', numFrames: frames, chunk, overlap, numInferenceSteps: steps },
    mode ?? undefined,
  );
  const streaming = f.long === 'streaming' ? { anchor: f.anchor, implicit: false } : null;
  return { mode, streaming, chunk, overlap, plan, refine };
}
