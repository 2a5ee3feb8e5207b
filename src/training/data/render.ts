// Rasterizer of the procedural world: backgrounds (solid, gradient, scrolling stripes and checkerboard) and
// flat shapes with anti-aliased edges. Shapes are signed-distance functions in pixel units; a pixel's
// coverage is clamp(0.5 − sdf(pixel centre), 0, 1), a one-pixel linear ramp across the edge. Stripes and
// checkerboard use exact box-filter coverage of the pixel (they are separable step functions).
//
// All geometry is defined on a 64×64 reference frame and scaled by s = min(width, height) / 64.

import {
  COLOUR_RGB,
  validateScene,
  type Background,
  type ObjectSpec,
  type RenderOptions,
  type SceneSpec,
  type ShapeName,
} from './world.js';
import { KinemaError } from '../../errors.js';

/** Object size across (reference pixels): the circle's diameter; the other shapes fit the same box. */
export const SIZE_PX = { small: 14, large: 24 } as const;
/** Linear-motion speed, reference pixels per frame. */
export const SPEED_PX = { slow: 0.6, fast: 1.5 } as const;
/** Rotation rate, degrees per frame. */
export const ROTATE_DEG = { slow: 3, fast: 6 } as const;
/** Bounce: hop height (reference pixels) and hop period (frames); y = y0 − A·|sin(π t / P)|. */
export const BOUNCE_HEIGHT_PX = 10;
export const BOUNCE_PERIOD = { slow: 12, fast: 6 } as const;
/** Orbit: radius (reference pixels) and period (frames), counter-clockwise on screen. */
export const ORBIT_RADIUS_PX = 10;
export const ORBIT_PERIOD = { slow: 24, fast: 12 } as const;
/** Grow / shrink: the scale runs linearly from 1 − a to 1 + a (grow) or back (shrink) over the clip. */
export const SCALE_SWING = { slow: 0.2, fast: 0.4 } as const;
/** Camera pan: background scroll speed, reference pixels per frame. */
export const PAN_PX = 1;

/** Radius of the circle that holds the shape at any rotation, per unit of size across. */
export const SHAPE_EXTENT: Record<ShapeName, number> = {
  circle: 0.5,
  square: 0.42 * Math.SQRT2,
  triangle: 0.55,
  star: 0.55,
  ring: 0.5,
  cross: Math.hypot(0.5, 0.17),
};

/** Area of the shape with size across 1 (so area in px² = fraction · across²). */
export const SHAPE_AREA: Record<ShapeName, number> = {
  circle: Math.PI * 0.25,
  square: 0.84 * 0.84,
  triangle: ((3 * Math.sqrt(3)) / 4) * 0.55 * 0.55,
  star: 5 * 0.55 * 0.25 * Math.sin(Math.PI / 5),
  ring: Math.PI * (0.25 - 0.28 * 0.28),
  cross: 2 * (1 * 0.34) - 0.34 * 0.34,
};

/** The reference-frame scale s of a width × height frame. */
export function frameScale(width: number, height: number): number {
  return Math.min(width, height) / 64;
}

export interface Pose {
  /** Centre, pixels. */
  x: number;
  y: number;
  /** Size multiplier (grow / shrink) and rotation (radians, clockwise on screen). */
  scale: number;
  angle: number;
  /** Radius of the object's bounding circle at this pose, pixels. */
  radius: number;
}

const DIRECTIONS: Record<string, [number, number]> = {
  left: [-1, 0],
  right: [1, 0],
  up: [0, -1],
  down: [0, 1],
  'up-left': [-Math.SQRT1_2, -Math.SQRT1_2],
  'up-right': [Math.SQRT1_2, -Math.SQRT1_2],
  'down-left': [-Math.SQRT1_2, Math.SQRT1_2],
  'down-right': [Math.SQRT1_2, Math.SQRT1_2],
};

/** Folds v into [lo, hi] by reflection at both ends (a ball bouncing between walls). */
function reflect(v: number, lo: number, hi: number): number {
  if (hi <= lo) return (lo + hi) / 2;
  const span = hi - lo;
  let u = (v - lo) % (2 * span);
  if (u < 0) u += 2 * span;
  return lo + (u > span ? 2 * span - u : u);
}

function clamp(v: number, lo: number, hi: number): number {
  return hi <= lo ? (lo + hi) / 2 : Math.min(hi, Math.max(lo, v));
}

/** Pose of the object at frame t of a clip of `frames` frames, before keeping it inside the frame. */
function rawPose(o: ObjectSpec, t: number, frames: number, width: number, height: number): Pose {
  const s = frameScale(width, height);
  const across = SIZE_PX[o.size] * s;
  let x = o.start[0] * width;
  let y = o.start[1] * height;
  let scale = 1;
  let angle = 0;
  const dir = DIRECTIONS[o.motion];
  if (dir) {
    x += dir[0] * SPEED_PX[o.speed] * s * t;
    y += dir[1] * SPEED_PX[o.speed] * s * t;
  } else if (o.motion === 'bounce') {
    y -= BOUNCE_HEIGHT_PX * s * Math.abs(Math.sin((Math.PI * t) / BOUNCE_PERIOD[o.speed]));
  } else if (o.motion === 'orbit') {
    const phase = (2 * Math.PI * t) / ORBIT_PERIOD[o.speed];
    x += ORBIT_RADIUS_PX * s * (Math.cos(phase) - 1);
    y -= ORBIT_RADIUS_PX * s * Math.sin(phase);
  } else if (o.motion === 'rotate') {
    angle = (ROTATE_DEG[o.speed] * Math.PI * t) / 180;
  } else {
    const u = frames > 1 ? t / (frames - 1) : 0.5;
    const swing = SCALE_SWING[o.speed] * (2 * u - 1);
    scale = o.motion === 'grow' ? 1 + swing : 1 - swing;
  }
  return { x, y, scale, angle, radius: SHAPE_EXTENT[o.shape] * across * scale };
}

/**
 * The object's pose at every frame. With contain = true (what the renderer draws), linear motions reflect
 * at the frame's walls and other motions are clamped inside it.
 */
export function objectTrack(
  o: ObjectSpec,
  frames: number,
  width: number,
  height: number,
  contain: boolean,
): Pose[] {
  const poses: Pose[] = [];
  for (let t = 0; t < frames; t++) {
    const p = rawPose(o, t, frames, width, height);
    if (contain) {
      const keep = DIRECTIONS[o.motion] ? reflect : clamp;
      p.x = keep(p.x, p.radius, width - p.radius);
      p.y = keep(p.y, p.radius, height - p.radius);
    }
    poses.push(p);
  }
  return poses;
}

// ---- signed distance functions (pixel units, local frame, y down) ----

type Sdf = (x: number, y: number) => number;

function boxSdf(x: number, y: number, hx: number, hy: number): number {
  const qx = Math.abs(x) - hx;
  const qy = Math.abs(y) - hy;
  return Math.hypot(Math.max(qx, 0), Math.max(qy, 0)) + Math.min(Math.max(qx, qy), 0);
}

function polygonSdf(x: number, y: number, v: Float64Array): number {
  const n = v.length / 2;
  let d2 = Infinity;
  let inside = false;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const ax = v[2 * j]!;
    const ay = v[2 * j + 1]!;
    const ex = v[2 * i]! - ax;
    const ey = v[2 * i + 1]! - ay;
    const wx = x - ax;
    const wy = y - ay;
    const h = Math.min(1, Math.max(0, (wx * ex + wy * ey) / (ex * ex + ey * ey)));
    const dx = wx - ex * h;
    const dy = wy - ey * h;
    d2 = Math.min(d2, dx * dx + dy * dy);
    if (ay > y !== v[2 * i + 1]! > y && x < ax + ((y - ay) * ex) / ey) inside = !inside;
  }
  return inside ? -Math.sqrt(d2) : Math.sqrt(d2);
}

/** Regular polygon or star outline: radii cycle through `radii`, starting at the top. */
function starVertices(points: number, radii: number[], across: number): Float64Array {
  const n = points * radii.length;
  const v = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
    const r = radii[i % radii.length]! * across;
    v[2 * i] = r * Math.cos(a);
    v[2 * i + 1] = r * Math.sin(a);
  }
  return v;
}

/** The shape's signed distance function for a size across of `across` pixels. */
export function shapeSdf(shape: ShapeName, across: number): Sdf {
  switch (shape) {
    case 'circle':
      return (x, y) => Math.hypot(x, y) - 0.5 * across;
    case 'ring': {
      const mid = 0.39 * across;
      const half = 0.11 * across;
      return (x, y) => Math.abs(Math.hypot(x, y) - mid) - half;
    }
    case 'square':
      return (x, y) => boxSdf(x, y, 0.42 * across, 0.42 * across);
    case 'cross': {
      const long = 0.5 * across;
      const thin = 0.17 * across;
      return (x, y) => Math.min(boxSdf(x, y, long, thin), boxSdf(x, y, thin, long));
    }
    case 'triangle': {
      const v = starVertices(3, [0.55], across);
      return (x, y) => polygonSdf(x, y, v);
    }
    case 'star': {
      const v = starVertices(5, [0.55, 0.25], across);
      return (x, y) => polygonSdf(x, y, v);
    }
  }
}

// ---- drawing ----

function drawObject(rgb: Uint8Array, width: number, height: number, o: ObjectSpec, pose: Pose): void {
  const across = SIZE_PX[o.size] * frameScale(width, height) * pose.scale;
  const sdf = shapeSdf(o.shape, across);
  const [r, g, b] = COLOUR_RGB[o.colour];
  const cos = Math.cos(pose.angle);
  const sin = Math.sin(pose.angle);
  const x0 = Math.max(0, Math.floor(pose.x - pose.radius - 1));
  const x1 = Math.min(width - 1, Math.ceil(pose.x + pose.radius + 1));
  const y0 = Math.max(0, Math.floor(pose.y - pose.radius - 1));
  const y1 = Math.min(height - 1, Math.ceil(pose.y + pose.radius + 1));
  for (let py = y0; py <= y1; py++) {
    const dy = py + 0.5 - pose.y;
    for (let px = x0; px <= x1; px++) {
      const dx = px + 0.5 - pose.x;
      const cover = 0.5 - sdf(cos * dx + sin * dy, -sin * dx + cos * dy);
      if (cover <= 0) continue;
      const c = cover >= 1 ? 1 : cover;
      const i = 3 * (py * width + px);
      rgb[i] = Math.round(rgb[i]! + (r - rgb[i]!) * c);
      rgb[i + 1] = Math.round(rgb[i + 1]! + (g - rgb[i + 1]!) * c);
      rgb[i + 2] = Math.round(rgb[i + 2]! + (b - rgb[i + 2]!) * c);
    }
  }
}

/** Length of [0, x] covered by the first half of each period (the "a" bands), for exact box filtering. */
function firstHalfMeasure(x: number, period: number): number {
  const k = Math.floor(x / period);
  return k * (period / 2) + Math.min(x - k * period, period / 2);
}

/** Fraction of the pixel [p − offset, p + 1 − offset] that lies in "a" bands. */
function bandCoverage(p: number, offset: number, period: number): number {
  return firstHalfMeasure(p + 1 - offset, period) - firstHalfMeasure(p - offset, period);
}

function mix(out: Uint8Array, i: number, a: readonly number[], b: readonly number[], wa: number): void {
  out[i] = Math.round(b[0]! + (a[0]! - b[0]!) * wa);
  out[i + 1] = Math.round(b[1]! + (a[1]! - b[1]!) * wa);
  out[i + 2] = Math.round(b[2]! + (a[2]! - b[2]!) * wa);
}

/** Fills one frame's background; pan is the texture's horizontal scroll in pixels (content moves right). */
function drawBackground(out: Uint8Array, width: number, height: number, bg: Background, pan: number): void {
  if (bg.kind === 'solid') {
    const [r, g, b] = COLOUR_RGB[bg.colour];
    for (let i = 0; i < out.length; i += 3) {
      out[i] = r;
      out[i + 1] = g;
      out[i + 2] = b;
    }
    return;
  }
  if (bg.kind === 'gradient') {
    const from = COLOUR_RGB[bg.from];
    const to = COLOUR_RGB[bg.to];
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const u = bg.vertical ? (y + 0.5) / height : (x + 0.5) / width;
        mix(out, 3 * (y * width + x), to, from, u);
      }
    }
    return;
  }
  const a = COLOUR_RGB[bg.a];
  const b = COLOUR_RGB[bg.b];
  const period = bg.period * frameScale(width, height);
  const columns = new Float64Array(width);
  for (let x = 0; x < width; x++) columns[x] = bandCoverage(x, pan, period);
  for (let y = 0; y < height; y++) {
    const row = bg.kind === 'checker' ? bandCoverage(y, 0, period) : 1;
    for (let x = 0; x < width; x++) {
      const cx = columns[x]!;
      mix(out, 3 * (y * width + x), a, b, cx * row + (1 - cx) * (1 - row));
    }
  }
}

function checkRenderOptions(opts: RenderOptions): void {
  const { width, height, frames } = opts;
  for (const [name, v, lo, hi] of [
    ['width', width, 8, 4096],
    ['height', height, 8, 4096],
    ['frames', frames, 1, 4096],
  ] as const) {
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new KinemaError(
        'WORLD_BAD_SCENE',
        `renderVideo: ${name} must be an integer in [${lo}, ${hi}], got ${v}`,
      );
    }
  }
}

/** RGB24 frames (row-major, 3 bytes a pixel) of the scene; deterministic, anti-aliased edges. */
export function renderVideo(scene: SceneSpec, opts: RenderOptions): Uint8Array[] {
  checkRenderOptions(opts);
  validateScene(scene);
  const { width, height, frames } = opts;
  const tracks = scene.objects.map((o) => objectTrack(o, frames, width, height, true));
  const panStep = PAN_PX * frameScale(width, height) * (scene.cameraPan === 'left' ? 1 : -1);
  const out: Uint8Array[] = [];
  for (let t = 0; t < frames; t++) {
    const rgb = new Uint8Array(width * height * 3);
    drawBackground(rgb, width, height, scene.background, scene.cameraPan ? panStep * t : 0);
    scene.objects.forEach((o, k) => drawObject(rgb, width, height, o, tracks[k]![t]!));
    out.push(rgb);
  }
  return out;
}
