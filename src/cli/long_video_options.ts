// `kinema generate --long naive|vidrd …`: the long-video flags, parsed and checked before any model is loaded
// (every bad combination is a named KinemaError, so no work starts and no output file appears).
import { Command, InvalidArgumentError, Option } from 'commander';
import { KinemaError } from '../errors.js';
import { intOption } from './options.js';
import { checkLongVideo, DEFAULT_CHUNK } from '../pipelines/long_video/chunked.js';
import type { ChunkPlan, LongVideoMode } from '../pipelines/long_video/chunked.js';
import { naiveMode } from '../pipelines/long_video/naive.js';
import { vidrdMode } from '../pipelines/vidrd.js';
import type { VidrdOptions } from '../pipelines/vidrd.js';

export const LONG_MODES = ['naive', 'vidrd'] as const;
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
}

/** A checked long-video request: the mode and the chunk layout. */
export interface LongVideoRequest {
  readonly mode: LongVideoMode;
  readonly chunk: number;
  readonly overlap: number;
  readonly plan: ChunkPlan;
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
      new Option('--long <mode>', 'long video, chunk by chunk: naive continuation or VidRD').choices([
        ...LONG_MODES,
      ]),
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
    );
}

/** True when any long-video flag is given. */
export function wantsLongVideo(f: LongVideoFlags): boolean {
  return [f.long, f.chunk, f.overlap, f.fnr, f.pns, f.dsg].some((v) => v !== undefined);
}

/**
 * The mode and plan the flags ask for, checked against the frame and step counts (named errors before any
 * work); null when no long-video flag is given.
 */
export function longVideoRequest(f: LongVideoFlags, frames: number, steps: number): LongVideoRequest | null {
  if (!wantsLongVideo(f)) return null;
  if (f.long === undefined)
    throw new KinemaError(
      'LONG_MODE_MISSING',
      '--chunk, --overlap, --fnr, --pns and --dsg need --long naive|vidrd',
    );
  if (f.latents !== undefined)
    throw new KinemaError(
      'LONG_WITH_LATENTS',
      '--latents gives one window of latents; it cannot start a --long video',
    );
  if (f.long === 'naive') {
    const vidrdOnly = (['fnr', 'pns', 'dsg'] as const).filter((k) => f[k] !== undefined);
    if (vidrdOnly.length > 0)
      throw new KinemaError(
        'LONG_OPTION_FOR_OTHER_MODE',
        `--${vidrdOnly[0]} is a VidRD option; it needs --long vidrd, not --long naive`,
      );
  }
  const chunk = f.chunk ?? DEFAULT_CHUNK;
  const overlap = f.overlap ?? Math.floor(chunk / 2);
  const vidrd: VidrdOptions = {
    ...(f.fnr !== undefined && { fnr: f.fnr === 'on' }),
    ...(f.pns !== undefined && { pns: f.pns === 'off' ? null : f.pns }),
    ...(f.dsg !== undefined && { dsg: f.dsg === 'off' ? null : f.dsg }),
  };
  const mode = f.long === 'naive' ? naiveMode() : vidrdMode(vidrd);
  const plan = checkLongVideo(
    { prompt: '', numFrames: frames, chunk, overlap, numInferenceSteps: steps },
    mode,
  );
  return { mode, chunk, overlap, plan };
}
