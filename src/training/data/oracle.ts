// The world's oracle: scores a video against a prompt by measuring each prompted object. An object is found
// by its colour (pixels whose nearest reference colour is the prompted one, within RGB distance 70); per
// frame the connected blob with the most interior pixels is kept, and its centroid, area and shape
// descriptors are measured. Colour holds when a blob of plausible size shows in most frames; shape is a
// nearest-prototype classification over the frames (prototypes measured on rendered world frames); size
// compares the blob's median size across with the midpoint of small and large; motion classifies the
// centroid track, the area trend and the orientation into one of the world's motions. docs/world.md states
// every rule and threshold.

import { parsePrompt, type ParsedObject } from './captions.js';
import {
  COLOUR_TOLERANCE,
  classifyShapeTrack,
  labelColours,
  largestBlob,
  orientationMoments,
  prototypeDistances,
  shapeFeatures,
  shapePrototypes,
} from './oracle_shape.js';
import { SHAPE_AREA, SIZE_PX, frameScale } from './render.js';
import { COLOURS, type MotionName, type ShapeName } from './world.js';
import { KinemaError } from '../../errors.js';

export { COLOUR_TOLERANCE };

export interface OracleScore {
  colour: boolean | null;
  shape: boolean | null;
  motion: boolean | null;
  size: boolean | null;
  details: Record<string, unknown>;
}

/** An object shows in a video when its blob is present in at least this fraction of the frames. */
export const PRESENCE_FRACTION = 0.6;
/** Plausible blob areas, in px² per s² (s = min(width, height) / 64). */
const MIN_AREA = 12;
const MAX_AREA = 1100;

/** Minimum mean strength of the chosen orientation moment for rotation to be measurable. */
const ORIENTATION_STRENGTH = 0.08;

/** Total signed rotation (degrees) over the track, or null when the shape shows no orientation. */
function totalRotation(points: TrackPoint[]): number | null {
  if (points.length < 2) return null;
  const meanStrength = [0, 1, 2].map(
    (j) => points.reduce((s, p) => s + p.moments.strength[j]!, 0) / points.length,
  );
  const j = meanStrength.indexOf(Math.max(...meanStrength));
  if (meanStrength[j]! < ORIENTATION_STRENGTH) return null;
  const k = j + 3;
  let total = 0;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]!.moments;
    const b = points[i]!.moments;
    total += wrapAngle(Math.atan2(b.im[j]!, b.re[j]!) - Math.atan2(a.im[j]!, a.re[j]!)) / k;
  }
  return (total * 180) / Math.PI;
}

function wrapAngle(a: number): number {
  return a - 2 * Math.PI * Math.round(a / (2 * Math.PI));
}

// ---- motion ----

interface TrackPoint {
  t: number;
  x: number;
  y: number;
  area: number;
  moments: ReturnType<typeof orientationMoments>;
}

/** Least-squares slope of values against times. */
export function slope(ts: number[], vs: number[]): number {
  const n = ts.length;
  const mt = ts.reduce((s, v) => s + v, 0) / n;
  const mv = vs.reduce((s, v) => s + v, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (ts[i]! - mt) * (vs[i]! - mv);
    den += (ts[i]! - mt) ** 2;
  }
  return den > 0 ? num / den : 0;
}

function range(vs: number[]): number {
  return Math.max(...vs) - Math.min(...vs);
}

/** Direction reversals of a 1-D track (turning points of its zigzag), counting swings ≥ `hysteresis`. */
function reversals(vs: number[], hysteresis: number): number {
  let dir = 0;
  let lo = vs[0]!;
  let hi = vs[0]!;
  let count = 0;
  for (const v of vs) {
    if (dir === 0) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
      if (v - lo >= hysteresis) [dir, hi] = [1, v];
      else if (hi - v >= hysteresis) [dir, lo] = [-1, v];
    } else if (dir > 0) {
      if (v > hi) hi = v;
      else if (hi - v >= hysteresis) [dir, lo, count] = [-1, v, count + 1];
    } else if (v < lo) lo = v;
    else if (v - lo >= hysteresis) [dir, hi, count] = [1, v, count + 1];
  }
  return count;
}

/** Algebraic (Kåsa) circle fit of the centroids, the fit's RMS residual and the signed angle swept. */
function circleFit(points: TrackPoint[]): { radius: number; residual: number; sweep: number } | null {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let suu = 0;
  let svv = 0;
  let suv = 0;
  let ru = 0;
  let rv = 0;
  for (const p of points) {
    const u = p.x - mx;
    const v = p.y - my;
    suu += u * u;
    svv += v * v;
    suv += u * v;
    ru += 0.5 * u * (u * u + v * v);
    rv += 0.5 * v * (u * u + v * v);
  }
  const det = suu * svv - suv * suv;
  if (!(det > 1e-9 * (suu + svv) ** 2)) return null;
  const a = (ru * svv - rv * suv) / det;
  const b = (rv * suu - ru * suv) / det;
  const cx = mx + a;
  const cy = my + b;
  const radius = Math.sqrt(a * a + b * b + (suu + svv) / n);
  let res = 0;
  let sweep = 0;
  points.forEach((p, i) => {
    res += (Math.hypot(p.x - cx, p.y - cy) - radius) ** 2;
    if (i > 0) {
      const q = points[i - 1]!;
      sweep += wrapAngle(Math.atan2(p.y - cy, p.x - cx) - Math.atan2(q.y - cy, q.x - cx));
    }
  });
  return { radius, residual: Math.sqrt(res / n), sweep: (sweep * 180) / Math.PI };
}

const DIRECTION_SECTORS: MotionName[] = [
  'right',
  'up-right',
  'up',
  'up-left',
  'left',
  'down-left',
  'down',
  'down-right',
];

/**
 * The world motion that best explains a track, tested in order: grow / shrink (area changes by a factor
 * ≥ 1.4), orbit (circle fit with radius ≥ 4s, residual ≤ 0.3·radius, sweep ≥ 150°), bounce (≥ 2
 * vertical reversals of ≥ 1.5s, vertical range ≥ 4s, horizontal range ≤ 4s), a straight direction (mean
 * velocity ≥ 0.25s px/frame, nearest of 8 directions), rotate (centroid still, turned ≥ 15°), else still.
 */
function classifyMotion(
  points: TrackPoint[],
  s: number,
): { motion: MotionName | 'still'; measured: Record<string, number | null> } {
  const ts = points.map((p) => p.t);
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const span = ts[ts.length - 1]! - ts[0]!;
  const areaChange =
    slope(
      ts,
      points.map((p) => Math.log(p.area)),
    ) * span;
  const vx = slope(ts, xs) / s;
  const vy = slope(ts, ys) / s;
  const fit = circleFit(points);
  const yReversals = reversals(ys, 1.5 * s);
  const rotation = totalRotation(points);
  const measured = {
    areaChange,
    vx,
    vy,
    yReversals,
    rotation,
    orbitSweep: fit?.sweep ?? null,
    orbitRadius: fit ? fit.radius / s : null,
  };
  const still = Math.hypot(range(xs), range(ys)) <= 2.5 * s;
  if (Math.abs(areaChange) >= Math.log(1.4)) return { motion: areaChange > 0 ? 'grow' : 'shrink', measured };
  if (
    fit &&
    fit.radius >= 4 * s &&
    fit.radius <= 32 * s &&
    fit.residual <= 0.3 * fit.radius &&
    Math.abs(fit.sweep) >= 150
  ) {
    return { motion: 'orbit', measured };
  }
  if (yReversals >= 2 && range(ys) >= 4 * s && range(xs) <= 4 * s) return { motion: 'bounce', measured };
  if (Math.hypot(vx, vy) >= 0.25 && !still) {
    const sector = Math.round(Math.atan2(-vy, vx) / (Math.PI / 4));
    return { motion: DIRECTION_SECTORS[(sector + 8) % 8]!, measured };
  }
  if (still && (rotation === null || Math.abs(rotation) >= 15)) return { motion: 'rotate', measured };
  return { motion: 'still', measured };
}

// ---- scoring ----

interface ObjectVerdict {
  colour: boolean | null;
  shape: boolean | null;
  motion: boolean | null;
  size: boolean | null;
  details: Record<string, unknown>;
}

function judgeObject(
  prompt: ParsedObject,
  labels: Uint8Array[],
  width: number,
  height: number,
): ObjectVerdict {
  const unsaid: ObjectVerdict = { colour: null, shape: null, motion: null, size: null, details: { prompt } };
  if (!prompt.colour)
    return { ...unsaid, details: { prompt, note: 'no colour named: the object cannot be segmented' } };
  const s = frameScale(width, height);
  const k = COLOURS.indexOf(prompt.colour);
  const protos = shapePrototypes(width, height);
  const points: TrackPoint[] = [];
  const distances: Map<ShapeName, number>[] = [];
  labels.forEach((lab, t) => {
    const blob = largestBlob(lab, width, height, k);
    if (!blob || blob.area < MIN_AREA * s * s || blob.area > MAX_AREA * s * s) return;
    distances.push(prototypeDistances(shapeFeatures(blob, width), protos));
    points.push({ t, x: blob.cx, y: blob.cy, area: blob.area, moments: orientationMoments(blob, width) });
  });
  const presence = points.length / labels.length;
  const found = presence >= PRESENCE_FRACTION;
  const said = (v: unknown, ok: () => boolean): boolean | null => (v === undefined ? null : found && ok());
  const { shape: shapeVote, votes } = classifyShapeTrack(distances);
  const shape = prompt.shape ?? shapeVote;
  const areas = points.map((p) => p.area).sort((a, b) => a - b);
  const medianArea = areas[Math.floor(areas.length / 2)] ?? 0;
  const across = shape ? Math.sqrt(medianArea / SHAPE_AREA[shape]) / s : null;
  const sizeCut = Math.sqrt(SIZE_PX.small * SIZE_PX.large);
  const motion = points.length >= 2 ? classifyMotion(points, s) : null;
  return {
    colour: found,
    shape: said(prompt.shape, () => shapeVote === prompt.shape),
    size: said(prompt.size, () => across !== null && (across >= sizeCut ? 'large' : 'small') === prompt.size),
    motion: said(prompt.motion, () => motion !== null && motion.motion === prompt.motion),
    details: {
      prompt,
      presence,
      shapeVotes: votes,
      shape: shapeVote,
      across,
      motion: motion?.motion ?? null,
      measured: motion?.measured ?? null,
      // where the object is first seen (pixels), for first-frame comparisons (image-to-video)
      start: points[0] ? { x: points[0].x, y: points[0].y } : null,
    },
  };
}

function combine(values: (boolean | null)[]): boolean | null {
  const said = values.filter((v): v is boolean => v !== null);
  return said.length === 0 ? null : said.every((v) => v);
}

/** Scores RGB24 frames against a prompt; each field is null when the prompt does not say. */
export function scoreVideo(frames: Uint8Array[], width: number, height: number, prompt: string): OracleScore {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 8 || height < 8) {
    throw new KinemaError(
      'ORACLE_BAD_INPUT',
      `scoreVideo: width and height must be integers ≥ 8, got ${width}×${height}`,
    );
  }
  if (frames.length === 0) throw new KinemaError('ORACLE_BAD_INPUT', 'scoreVideo: no frames');
  frames.forEach((f, i) => {
    if (f.length !== width * height * 3) {
      throw new KinemaError(
        'ORACLE_BAD_INPUT',
        `scoreVideo: frame ${i} has ${f.length} bytes, expected ${width * height * 3} (RGB24 ${width}×${height})`,
      );
    }
  });
  const parsed = parsePrompt(prompt);
  const labels = frames.map((f) => labelColours(f, width * height));
  const verdicts = parsed.objects.map((o) => judgeObject(o, labels, width, height));
  return {
    colour: combine(verdicts.map((v) => v.colour)),
    shape: combine(verdicts.map((v) => v.shape)),
    motion: combine(verdicts.map((v) => v.motion)),
    size: combine(verdicts.map((v) => v.size)),
    details: { parsed, objects: verdicts.map((v) => v.details) },
  };
}
