// The procedural text–video world that Kinema's small default models are trained on: one or two flat shapes
// moving over a solid, gradient, striped or checkered background, each scene described by a caption from a
// small grammar (captions.ts), rendered with anti-aliased edges (render.ts), and scored by an oracle that
// measures colour, shape, size and motion in a video (oracle.ts). docs/world.md defines every rule.
//
// Geometry is defined on a 64×64 reference frame and scales with s = min(width, height) / 64: objects are
// 14·s (small) or 24·s (large) pixels across; linear motions run at 0.6·s (slow) or 1.5·s (fast) px/frame.
// Scene positions are normalised to [0, 1]²; sampleScene() picks them so that every object stays inside
// a square frame for the nominal clip length (16 frames unless told otherwise) and the two objects' paths
// keep apart; longer clips reflect linear motions at the walls.

import { Generator } from '../../engine/random.js';
import { objectTrack, renderVideo } from './render.js';
import { captionOf, canonicalCaption, staticCaptionOf, vocabularyWords } from './captions.js';
import { KinemaError } from '../../errors.js';

export const SHAPES = ['circle', 'square', 'triangle', 'star', 'ring', 'cross'] as const;
export type ShapeName = (typeof SHAPES)[number];

export const COLOURS = [
  'red',
  'green',
  'blue',
  'yellow',
  'orange',
  'purple',
  'pink',
  'cyan',
  'white',
  'black',
] as const;
export type ColourName = (typeof COLOURS)[number];

/** sRGB reference colours; every pair is at least 80 apart in RGB (Euclidean). */
export const COLOUR_RGB: Record<ColourName, [number, number, number]> = {
  red: [220, 40, 40],
  green: [40, 170, 60],
  blue: [40, 80, 220],
  yellow: [245, 220, 50],
  orange: [245, 140, 30],
  purple: [140, 60, 190],
  pink: [245, 140, 200],
  cyan: [50, 210, 220],
  white: [245, 245, 245],
  black: [25, 25, 25],
};

/** The eight straight-line motions. */
const LINEAR = ['left', 'right', 'up', 'down', 'up-left', 'up-right', 'down-left', 'down-right'] as const;

export const MOTIONS = [...LINEAR, 'bounce', 'rotate', 'grow', 'shrink', 'orbit'] as const;
export type MotionName = (typeof MOTIONS)[number];

export type Size = 'small' | 'large';
export type Speed = 'slow' | 'fast';

export interface ObjectSpec {
  shape: ShapeName;
  colour: ColourName;
  size: Size;
  motion: MotionName;
  speed: Speed;
  /** Centre at frame 0, in [0, 1]² (x to the right, y down). For 'orbit', the orbit's centre is start − (R, 0). */
  start: [number, number];
}

export type Background =
  | { kind: 'solid'; colour: ColourName }
  | { kind: 'gradient'; from: ColourName; to: ColourName; vertical: boolean }
  /** Vertical stripes or a checkerboard; period in reference pixels (one a-band plus one b-band). */
  | { kind: 'stripes' | 'checker'; a: ColourName; b: ColourName; period: number };

export interface SceneSpec {
  objects: ObjectSpec[];
  background: Background;
  /** The background texture scrolls as the camera pans; objects move in screen coordinates. */
  cameraPan: 'left' | 'right' | null;
}

export interface RenderOptions {
  width: number;
  height: number;
  frames: number;
}

export interface WorldSample {
  caption: string;
  scene: SceneSpec;
  frames: Uint8Array[];
}

export { renderVideo, captionOf, canonicalCaption, staticCaptionOf, vocabularyWords };

/** Clip length that sampleScene() plans positions for when not told otherwise. */
export const NOMINAL_FRAMES = 16;
/** Minimum RGB distance between an object's colour and any background colour (or gradient segment). */
export const MIN_CONTRAST = 100;

const LINEAR_MOTIONS: ReadonlySet<MotionName> = new Set(LINEAR);

/** True for the eight straight-line motions. */
export function isLinearMotion(m: MotionName): boolean {
  return LINEAR_MOTIONS.has(m);
}

/** Circle and ring look the same at every angle, so the world never makes them rotate. */
export function canRotate(shape: ShapeName): boolean {
  return shape !== 'circle' && shape !== 'ring';
}

/** Held out of training: any green triangle, or a purple object moving up ('up', 'up-left', 'up-right'). */
export function isHeldOut(scene: SceneSpec): boolean {
  return scene.objects.some(
    (o) =>
      (o.colour === 'green' && o.shape === 'triangle') ||
      (o.colour === 'purple' && (o.motion === 'up' || o.motion === 'up-left' || o.motion === 'up-right')),
  );
}

function checkName<T extends string>(what: string, v: unknown, names: readonly T[]): void {
  if (!names.includes(v as T))
    throw new KinemaError(
      'WORLD_BAD_SCENE',
      `invalid scene: ${what} must be one of ${names.join(', ')}, got ${String(v)}`,
    );
}

/** Throws a clear error when a scene is malformed (unknown names, bad positions, 0 or >2 objects). */
export function validateScene(scene: SceneSpec): void {
  if (!Array.isArray(scene.objects) || scene.objects.length < 1 || scene.objects.length > 2) {
    throw new KinemaError(
      'WORLD_BAD_SCENE',
      `invalid scene: needs 1 or 2 objects, got ${scene.objects?.length}`,
    );
  }
  scene.objects.forEach((o, i) => {
    checkName(`objects[${i}].shape`, o.shape, SHAPES);
    checkName(`objects[${i}].colour`, o.colour, COLOURS);
    checkName(`objects[${i}].size`, o.size, ['small', 'large']);
    checkName(`objects[${i}].motion`, o.motion, MOTIONS);
    checkName(`objects[${i}].speed`, o.speed, ['slow', 'fast']);
    const ok = Array.isArray(o.start) && o.start.length === 2 && o.start.every((v) => Number.isFinite(v));
    if (!ok)
      throw new KinemaError(
        'WORLD_BAD_SCENE',
        `invalid scene: objects[${i}].start must be two finite numbers`,
      );
  });
  const bg = scene.background;
  checkName('background.kind', bg?.kind, ['solid', 'gradient', 'stripes', 'checker']);
  for (const c of backgroundColours(bg)) checkName('background colour', c, COLOURS);
  if ((bg.kind === 'stripes' || bg.kind === 'checker') && !(Number.isFinite(bg.period) && bg.period >= 2)) {
    throw new KinemaError(
      'WORLD_BAD_SCENE',
      `invalid scene: background.period must be a number ≥ 2, got ${bg.period}`,
    );
  }
  checkName('cameraPan', scene.cameraPan === null ? 'none' : scene.cameraPan, ['none', 'left', 'right']);
}

// ---- colour geometry ----

function rgbDistance(a: ColourName, b: ColourName): number {
  const p = COLOUR_RGB[a];
  const q = COLOUR_RGB[b];
  return Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]);
}

/** Distance from colour c to the RGB segment between colours a and b (a gradient's colours). */
function segmentDistance(c: ColourName, a: ColourName, b: ColourName): number {
  const p = COLOUR_RGB[c];
  const u = COLOUR_RGB[a];
  const v = COLOUR_RGB[b];
  const d = [v[0] - u[0], v[1] - u[1], v[2] - u[2]];
  const len2 = d[0]! * d[0]! + d[1]! * d[1]! + d[2]! * d[2]!;
  const t =
    len2 === 0
      ? 0
      : Math.min(
          1,
          Math.max(0, ((p[0] - u[0]) * d[0]! + (p[1] - u[1]) * d[1]! + (p[2] - u[2]) * d[2]!) / len2),
        );
  return Math.hypot(p[0] - u[0] - t * d[0]!, p[1] - u[1] - t * d[1]!, p[2] - u[2] - t * d[2]!);
}

/** The named colours a background shows. */
export function backgroundColours(bg: Background): ColourName[] {
  if (bg.kind === 'solid') return [bg.colour];
  if (bg.kind === 'gradient') return [bg.from, bg.to];
  return [bg.a, bg.b];
}

/** Whether an object of colour c stands out from the background by at least MIN_CONTRAST everywhere. */
export function contrastsWith(c: ColourName, bg: Background): boolean {
  if (bg.kind === 'gradient') return segmentDistance(c, bg.from, bg.to) >= MIN_CONTRAST;
  return backgroundColours(bg).every((b) => rgbDistance(c, b) >= MIN_CONTRAST);
}

// ---- sampling ----

function uniform(rng: Generator): number {
  return rng.uniform(1)[0]!;
}

function pick<T>(rng: Generator, items: readonly T[]): T {
  return items[Math.floor(uniform(rng) * items.length)]!;
}

function between(rng: Generator, lo: number, hi: number): number {
  return hi <= lo ? (lo + hi) / 2 : lo + (hi - lo) * uniform(rng);
}

const STRIPE_PERIODS = [12, 16, 20, 24] as const;

function sampleBackground(rng: Generator): Background {
  const r = uniform(rng);
  if (r < 0.55) return { kind: 'solid', colour: pick(rng, COLOURS) };
  const a = pick(rng, COLOURS);
  let b = pick(rng, COLOURS);
  while (b === a || rgbDistance(a, b) < 80) b = pick(rng, COLOURS);
  if (r < 0.7) return { kind: 'gradient', from: a, to: b, vertical: uniform(rng) < 0.5 };
  return { kind: r < 0.85 ? 'stripes' : 'checker', a, b, period: pick(rng, STRIPE_PERIODS) };
}

/**
 * Where a start coordinate may lie (reference pixels) so the nominal clip's track stays inside. `centring` k in
 * (0, 1] narrows, for straight-line motions and along the axes they move on, the room the start is drawn from
 * to k times its width around the place that centres the track in the frame (1: all the room). It takes the
 * same one draw per axis either way, so a one-object scene differs only in its start.
 */
function sampleStart(rng: Generator, o: ObjectSpec, frames: number, centring = 1): [number, number] {
  // Place the object at the frame centre, measure how far its track strays, then shift it randomly
  // within the room that is left on each side.
  const probe: ObjectSpec = { ...o, start: [0.5, 0.5] };
  const track = objectTrack(probe, frames, 64, 64, false);
  let minX = Infinity;
  let maxX = -Infinity;
  let minY = Infinity;
  let maxY = -Infinity;
  for (const p of track) {
    minX = Math.min(minX, p.x - p.radius);
    maxX = Math.max(maxX, p.x + p.radius);
    minY = Math.min(minY, p.y - p.radius);
    maxY = Math.max(maxY, p.y + p.radius);
  }
  const margin = 1;
  const linear = isLinearMotion(o.motion);
  const moves = [/left|right/.test(o.motion), /up|down/.test(o.motion)];
  const draw = (lo: number, hi: number, axis: 0 | 1): number => {
    if (!(linear && moves[axis] && centring < 1)) return between(rng, lo, hi);
    const mid = (lo + hi) / 2;
    const half = ((hi - lo) / 2) * centring;
    return between(rng, mid - half, mid + half);
  };
  const dx = draw(margin - minX, 64 - margin - maxX, 0);
  const dy = draw(margin - minY, 64 - margin - maxY, 1);
  return [(32 + dx) / 64, (32 + dy) / 64];
}

function sampleObject(
  rng: Generator,
  bg: Background,
  taken: ColourName[],
  frames: number,
  centring: number,
): ObjectSpec {
  const shape = pick(rng, SHAPES);
  let colour = pick(rng, COLOURS);
  while (taken.includes(colour) || !contrastsWith(colour, bg)) colour = pick(rng, COLOURS);
  const size: Size = uniform(rng) < 0.5 ? 'small' : 'large';
  let motion = pick(rng, MOTIONS);
  while (motion === 'rotate' && !canRotate(shape)) motion = pick(rng, MOTIONS);
  const speed: Speed = uniform(rng) < 0.5 ? 'slow' : 'fast';
  const o: ObjectSpec = { shape, colour, size, motion, speed, start: [0.5, 0.5] };
  o.start = sampleStart(rng, o, frames, centring);
  return o;
}

/** Whether two objects' tracks over the clip keep their bounding circles apart (reference frame). */
function tracksApart(a: ObjectSpec, b: ObjectSpec, frames: number): boolean {
  const ta = objectTrack(a, frames, 64, 64, true);
  const tb = objectTrack(b, frames, 64, 64, true);
  return ta.every((p, i) => {
    const q = tb[i]!;
    return Math.hypot(p.x - q.x, p.y - q.y) >= p.radius + q.radius + 1;
  });
}

function contrastingColours(bg: Background): number {
  return COLOURS.filter((c) => contrastsWith(c, bg)).length;
}

function sampleAnyScene(rng: Generator, frames: number, centring: number): SceneSpec {
  let background = sampleBackground(rng);
  while (contrastingColours(background) < 2) background = sampleBackground(rng);
  const cameraPan: SceneSpec['cameraPan'] =
    background.kind === 'stripes' || background.kind === 'checker'
      ? pick(rng, [null, 'left', 'right'] as const)
      : null;
  const first = sampleObject(rng, background, [], frames, centring);
  const objects = [first];
  if (uniform(rng) < 0.35) {
    for (let attempt = 0; attempt < 20; attempt++) {
      const second = sampleObject(rng, background, [first.colour], frames, centring);
      if (tracksApart(first, second, frames)) {
        objects.push(second);
        break;
      }
    }
  }
  return { objects, background, cameraPan };
}

/** Returns `k` if it is a valid trackCentring (a number in (0, 1]), else throws naming `where`. */
export function checkTrackCentring(k: number, where: string): number {
  if (!(k > 0 && k <= 1))
    throw new KinemaError('WORLD_BAD_SCENE', `${where}: trackCentring must be a number in (0, 1], got ${k}`);
  return k;
}

/**
 * A random scene. split 'train' (the default) never yields a held-out scene, 'heldout' only held-out ones,
 * 'any' either. frames is the clip length positions are planned for (default 16). trackCentring k in (0, 1]
 * (default 1) draws the start of a straight-line motion from k times the room around the start that centres
 * its track, along the axes it moves on: with k < 1 an object moving left starts right of the centre and ends
 * left of it, so where the object is in each frame says which way it goes.
 */
export function sampleScene(
  rng: Generator,
  opts: { split?: 'train' | 'heldout' | 'any'; frames?: number; trackCentring?: number } = {},
): SceneSpec {
  const split = opts.split ?? 'train';
  if (split !== 'train' && split !== 'heldout' && split !== 'any') {
    throw new KinemaError(
      'WORLD_BAD_SCENE',
      `sampleScene: split must be 'train', 'heldout' or 'any', got ${String(split)}`,
    );
  }
  const frames = opts.frames ?? NOMINAL_FRAMES;
  if (!Number.isInteger(frames) || frames < 1) {
    throw new KinemaError('WORLD_BAD_SCENE', `sampleScene: frames must be a positive integer, got ${frames}`);
  }
  const centring = checkTrackCentring(opts.trackCentring ?? 1, 'sampleScene');
  for (;;) {
    const scene = sampleAnyScene(rng, frames, centring);
    if (split === 'any' || isHeldOut(scene) === (split === 'heldout')) return scene;
  }
}

/** SplitMix64 finaliser (Steele et al.): a well-mixed 64-bit value from a 64-bit input. */
function splitMix64(x: bigint): bigint {
  const mask = (1n << 64n) - 1n;
  let z = (x + 0x9e3779b97f4a7c15n) & mask;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask;
  return z ^ (z >> 31n);
}

/** The generator seed of sample (seed, index). */
export function sampleSeed(seed: number, index: number): bigint {
  for (const [name, v] of [
    ['seed', seed],
    ['index', index],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new KinemaError(
        'WORLD_BAD_SCENE',
        `worldSample: ${name} must be a non-negative safe integer, got ${v}`,
      );
    }
  }
  return splitMix64(splitMix64(BigInt(seed)) ^ BigInt(index));
}

/** Deterministic by (seed, index): the same index always gives the same sample (training resumes exactly). */
export function worldSample(
  seed: number,
  index: number,
  opts: RenderOptions & { split?: 'train' | 'heldout'; imageMode?: boolean; trackCentring?: number },
): WorldSample {
  const rng = new Generator(sampleSeed(seed, index));
  const split = opts.split ?? 'train';
  if (split !== 'train' && split !== 'heldout') {
    throw new KinemaError(
      'WORLD_BAD_SCENE',
      `worldSample: split must be 'train' or 'heldout', got ${String(split)}`,
    );
  }
  const imageMode = opts.imageMode === true;
  const frames = imageMode ? 1 : opts.frames;
  const scene = sampleScene(rng, {
    split,
    frames: Math.max(frames, NOMINAL_FRAMES),
    ...(opts.trackCentring !== undefined && { trackCentring: opts.trackCentring }),
  });
  const render: RenderOptions = { width: opts.width, height: opts.height, frames };
  const frameData = renderVideo(scene, render);
  const caption = imageMode ? staticCaptionOf(scene, rng) : captionOf(scene, rng);
  return { caption, scene, frames: frameData };
}

/** RGB24 frames → Float32Array [F, 3, H, W] with values v / 127.5 − 1 in [−1, 1]. */
export function toFloatCHW(frames: Uint8Array[], width: number, height: number): Float32Array {
  const plane = width * height;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new KinemaError(
      'WORLD_BAD_SCENE',
      `toFloatCHW: width and height must be positive integers, got ${width}×${height}`,
    );
  }
  const out = new Float32Array(frames.length * 3 * plane);
  frames.forEach((f, i) => {
    if (f.length !== plane * 3) {
      throw new KinemaError(
        'WORLD_BAD_SCENE',
        `toFloatCHW: frame ${i} has ${f.length} bytes, expected ${plane * 3} for ${width}×${height}`,
      );
    }
    const base = i * 3 * plane;
    for (let p = 0; p < plane; p++) {
      out[base + p] = f[3 * p]! / 127.5 - 1;
      out[base + plane + p] = f[3 * p + 1]! / 127.5 - 1;
      out[base + 2 * plane + p] = f[3 * p + 2]! / 127.5 - 1;
    }
  });
  return out;
}
