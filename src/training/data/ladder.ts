// The learnability ladder (issue 27): world subsets of growing difficulty, each a clip source for the UNet
// stage and a set of scored scenes apart from its training indices.
//   L0  one large red circle on solid blue, 4 directions, fast (only the direction word varies)
//   L1  + 6 colours                 L2  + all shapes and both sizes
//   L3  + gradient/striped/checkered backgrounds                 L4  the full world (worldSample's train split)
// Every straight track is centred along its axis and offset at random across it, so that where the object is
// in each frame depends on the direction word (with uniform starts the mean clip of a caption barely does).
// Held out: on L1–L3 the (colour, direction) pairs with (colour index + direction index) % 4 = 0 are never
// trained on; L0 has only 4 captions, so its held-out scenes are the same captions on new offsets (and the
// scorer's new noise); L4 uses the world's own held-out split.
import { Generator } from '../../engine/random.js';
import { KinemaError } from '../../errors.js';
import { SPEED_PX } from './render.js';
import {
  SHAPES,
  canonicalCaption,
  contrastsWith,
  renderVideo,
  sampleScene,
  sampleSeed,
  worldSample,
} from './world.js';
import type { Background, ColourName, MotionName, SceneSpec } from './world.js';

/** A clip source (the UNet stage's `ClipSource` shape): the training clip with this index at this size. */
export type LadderSource = (
  index: number,
  q: { readonly width: number; readonly height: number; readonly frames: number },
) => { caption: string; frames: Uint8Array[] };

export const LADDER_RUNGS = 5;
export const LADDER_DIRECTIONS = ['left', 'right', 'up', 'down'] as const satisfies readonly MotionName[];
export const LADDER_COLOURS = [
  'red',
  'yellow',
  'green',
  'orange',
  'white',
  'pink',
] as const satisfies readonly ColourName[];
const BLUE: Background = { kind: 'solid', colour: 'blue' };

export interface LadderOptions {
  /** Frame size (square) and clip length the tracks are laid out for. */
  readonly size: number;
  readonly frames: number;
  /**
   * Contrast groups: training indices 4k … 4k+3 share one scene drawn in the 4 directions (batch 4 keeps a
   * group in one step), so within a step the clips differ only in the direction word.
   */
  readonly contrast?: boolean;
  /**
   * Every track centred across too (no random offset): rung 0 then has exactly 4 clips, the 4-direction form of
   * the two-clip direction gate — what separates "4 directions" from "a new scene per sample".
   */
  readonly fixedTrack?: boolean;
}

/** (colour, direction) pairs never trained on in L1–L3. */
export function heldOutPair(colour: ColourName, dir: MotionName): boolean {
  const c = (LADDER_COLOURS as readonly string[]).indexOf(colour);
  const d = (LADDER_DIRECTIONS as readonly string[]).indexOf(dir);
  return c >= 0 && d >= 0 && (c + d) % 4 === 0;
}

const pick = <T>(rng: Generator, xs: readonly T[]): T =>
  xs[Math.floor(rng.uniform(1)[0]! * xs.length) % xs.length]!;

/** A start whose straight track is centred along its axis, offset at random across it. */
function centredStart(rng: Generator, dir: MotionName, o: LadderOptions): [number, number] {
  const half = (SPEED_PX.fast * (o.frames - 1)) / o.size / 2;
  const drawn = 0.3 + 0.4 * rng.uniform(1)[0]!; // drawn either way, so the other draws do not move
  const across = o.fixedTrack === true ? 0.5 : drawn;
  if (dir === 'left') return [0.5 + half, across];
  if (dir === 'right') return [0.5 - half, across];
  if (dir === 'up') return [across, 0.5 + half];
  return [across, 0.5 - half];
}

/** One scene of rungs 0–3 (`forceDir`: this direction instead of a drawn one; the draws stay the same). */
export function ladderScene(
  rung: number,
  rng: Generator,
  split: 'train' | 'heldout',
  o: LadderOptions,
  forceDir?: MotionName,
): SceneSpec {
  for (;;) {
    const drawn = pick(rng, LADDER_DIRECTIONS);
    const dir = forceDir ?? drawn;
    const background = rung >= 3 ? sampleScene(rng).background : BLUE;
    const colour = rung >= 1 ? pick(rng, LADDER_COLOURS) : 'red';
    if (!contrastsWith(colour, background)) continue;
    if (rung >= 1 && heldOutPair(colour, dir) !== (split === 'heldout')) continue;
    return {
      objects: [
        {
          shape: rung >= 2 ? pick(rng, SHAPES) : 'circle',
          colour,
          size: rung >= 2 ? pick(rng, ['small', 'large'] as const) : 'large',
          motion: dir,
          speed: 'fast',
          start: centredStart(rng, dir, o),
        },
      ],
      background,
      cameraPan: null,
    };
  }
}

function checkRung(rung: number): void {
  if (!Number.isInteger(rung) || rung < 0 || rung >= LADDER_RUNGS)
    throw new KinemaError(
      'TRAIN_BAD_SETTINGS',
      `ladder rung must be an integer 0–${LADDER_RUNGS - 1}, got ${rung}`,
    );
}

/**
 * The rung's training data: sample `index` is a new scene (seed (rung, index)), so a run of S steps × B clips
 * sees S·B distinct scenes (S·B/4 with contrast groups). Rung 4 is the world's training split.
 */
export function ladderSource(rung: number, o: LadderOptions): LadderSource {
  checkRung(rung);
  return (index, q) => {
    if (rung === 4) {
      const s = worldSample(4, index, { width: q.width, height: q.height, frames: q.frames, split: 'train' });
      return { caption: s.caption, frames: s.frames };
    }
    const scene =
      o.contrast === true
        ? ladderScene(
            rung,
            new Generator(sampleSeed(rung, Math.floor(index / 4))),
            'train',
            o,
            LADDER_DIRECTIONS[index % 4],
          )
        : ladderScene(rung, new Generator(sampleSeed(rung, index)), 'train', o);
    return {
      caption: canonicalCaption(scene),
      frames: renderVideo(scene, { width: q.width, height: q.height, frames: q.frames }),
    };
  };
}

/** The k-th scored scene of a group, drawn apart from the training indices (another sample seed). */
export function ladderScoredScene(
  rung: number,
  group: 'train' | 'heldout',
  k: number,
  o: LadderOptions,
): SceneSpec {
  checkRung(rung);
  const rng = new Generator(sampleSeed(100 + rung + (group === 'heldout' ? 10 : 0), k));
  if (rung === 4) return sampleScene(rng, { split: group, frames: o.frames });
  return ladderScene(rung, rng, group, o);
}
