// Segmentation and shape measurement for the world's oracle (oracle.ts): colour labelling, the object's
// blob, rotation- and scale-invariant shape descriptors, k-fold orientation moments, and the shape
// prototypes measured on rendered frames of the world itself.

import { renderVideo } from './render.js';
import { COLOURS, COLOUR_RGB, SHAPES, type ColourName, type ObjectSpec, type ShapeName } from './world.js';
import { KinemaError } from '../../errors.js';

/** A pixel belongs to colour c when c is its nearest reference colour and lies within this RGB distance. */
export const COLOUR_TOLERANCE = 70;

// ---- segmentation ----

/** Per pixel: index into COLOURS of the nearest reference colour within tolerance, or 255. */
export function labelColours(frame: Uint8Array, pixels: number): Uint8Array {
  const labels = new Uint8Array(pixels);
  const ref = COLOURS.map((c) => COLOUR_RGB[c]);
  const tol2 = COLOUR_TOLERANCE * COLOUR_TOLERANCE;
  for (let p = 0; p < pixels; p++) {
    const r = frame[3 * p]!;
    const g = frame[3 * p + 1]!;
    const b = frame[3 * p + 2]!;
    let best = 255;
    let bestD = tol2;
    for (let k = 0; k < ref.length; k++) {
      const q = ref[k]!;
      const d = (r - q[0]) ** 2 + (g - q[1]) ** 2 + (b - q[2]) ** 2;
      if (d < bestD) {
        bestD = d;
        best = k;
      }
    }
    labels[p] = best;
  }
  return labels;
}

/** One connected region of a colour: its pixel indices, centroid and bounding box. */
export interface Blob {
  pixels: Int32Array;
  area: number;
  cx: number;
  cy: number;
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

function inMask(labels: Uint8Array, w: number, h: number, x: number, y: number, k: number): boolean {
  return x >= 0 && y >= 0 && x < w && y < h && labels[y * w + x] === k;
}

/**
 * The 4-connected region of colour k with the most interior pixels (pixels with at least 3 of their 4
 * neighbours in the colour). Anti-aliased edges between two other colours can blend into k, but only
 * as one-pixel-thin lines, which have no interior and so never win.
 */
export function largestBlob(labels: Uint8Array, w: number, h: number, k: number): Blob | null {
  const seen = new Uint8Array(w * h);
  const stack = new Int32Array(w * h);
  let best: Blob | null = null;
  let bestInterior = 2;
  for (let start = 0; start < w * h; start++) {
    if (labels[start] !== k || seen[start]) continue;
    let n = 0;
    let top = 0;
    stack[top++] = start;
    seen[start] = 1;
    const members: number[] = [];
    while (top > 0) {
      const p = stack[--top]!;
      members.push(p);
      const x = p % w;
      const y = (p - x) / w;
      let around = 0;
      for (const [dx, dy] of [
        [1, 0],
        [-1, 0],
        [0, 1],
        [0, -1],
      ] as const) {
        if (!inMask(labels, w, h, x + dx, y + dy, k)) continue;
        around++;
        const q = p + dy * w + dx;
        if (!seen[q]) {
          seen[q] = 1;
          stack[top++] = q;
        }
      }
      if (around >= 3) n++;
    }
    if (n > bestInterior) {
      bestInterior = n;
      best = blobOf(members, w);
    }
  }
  return best;
}

function blobOf(members: number[], w: number): Blob {
  let sx = 0;
  let sy = 0;
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (const p of members) {
    const x = p % w;
    const y = (p - x) / w;
    sx += x;
    sy += y;
    x0 = Math.min(x0, x);
    x1 = Math.max(x1, x);
    y0 = Math.min(y0, y);
    y1 = Math.max(y1, y);
  }
  const n = members.length;
  return { pixels: Int32Array.from(members), area: n, cx: sx / n + 0.5, cy: sy / n + 0.5, x0, x1, y0, y1 };
}

// ---- shape descriptors ----

/** Area of the convex hull of the blob's pixel squares (monotone chain over each row's end corners). */
function hullArea(b: Blob, w: number): number {
  const rows = b.y1 - b.y0 + 1;
  const lo = new Float64Array(rows).fill(Infinity);
  const hi = new Float64Array(rows).fill(-Infinity);
  for (const p of b.pixels) {
    const x = p % w;
    const r = (p - x) / w - b.y0;
    lo[r] = Math.min(lo[r]!, x);
    hi[r] = Math.max(hi[r]!, x + 1);
  }
  const pts: [number, number][] = [];
  for (let r = 0; r < rows; r++) {
    if (lo[r] === Infinity) continue;
    const y = b.y0 + r;
    pts.push([lo[r]!, y], [lo[r]!, y + 1], [hi[r]!, y], [hi[r]!, y + 1]);
  }
  pts.sort((a, c) => a[0] - c[0] || a[1] - c[1]);
  const cross = (o: number[], a: number[], c: number[]): number =>
    (a[0]! - o[0]!) * (c[1]! - o[1]!) - (a[1]! - o[1]!) * (c[0]! - o[0]!);
  const chain = (list: [number, number][]): [number, number][] => {
    const out: [number, number][] = [];
    for (const p of list) {
      while (out.length >= 2 && cross(out[out.length - 2]!, out[out.length - 1]!, p) <= 0) out.pop();
      out.push(p);
    }
    return out;
  };
  const hull = [...chain(pts).slice(0, -1), ...chain([...pts].reverse()).slice(0, -1)];
  let twice = 0;
  for (let i = 0; i < hull.length; i++) {
    const a = hull[i]!;
    const c = hull[(i + 1) % hull.length]!;
    twice += a[0] * c[1] - c[0] * a[1];
  }
  return Math.abs(twice) / 2;
}

/**
 * Rotation- and scale-invariant descriptors of a blob: solidity (area / convex hull area), radial fill
 * (area / area of the circle through the farthest pixel), hole fraction (enclosed non-blob pixels / area
 * with them) and inner ratio (distance to the nearest non-blob pixel / distance to the farthest blob pixel).
 */
export function shapeDescriptors(b: Blob, w: number): number[] {
  const bw = b.x1 - b.x0 + 3;
  const bh = b.y1 - b.y0 + 3;
  const inside = new Uint8Array(bw * bh);
  let rMax = 0;
  for (const p of b.pixels) {
    const x = p % w;
    const y = (p - x) / w;
    inside[(y - b.y0 + 1) * bw + (x - b.x0 + 1)] = 1;
    rMax = Math.max(rMax, Math.hypot(x + 0.5 - b.cx, y + 0.5 - b.cy));
  }
  rMax += 0.5;
  // Flood the outside from the padded box's border; what it cannot reach is a hole.
  const outside = new Uint8Array(bw * bh);
  const stack: number[] = [0];
  outside[0] = 1;
  let rIn = Infinity;
  while (stack.length > 0) {
    const q = stack.pop()!;
    const qx = q % bw;
    const qy = (q - qx) / bw;
    for (const [nx, ny] of [
      [qx + 1, qy],
      [qx - 1, qy],
      [qx, qy + 1],
      [qx, qy - 1],
    ] as const) {
      const n = ny * bw + nx;
      if (nx < 0 || ny < 0 || nx >= bw || ny >= bh || inside[n] || outside[n]) continue;
      outside[n] = 1;
      stack.push(n);
    }
  }
  let holes = 0;
  for (let q = 0; q < bw * bh; q++) {
    if (inside[q]) continue;
    if (!outside[q]) holes++;
    const qx = q % bw;
    const qy = (q - qx) / bw;
    rIn = Math.min(rIn, Math.hypot(qx + b.x0 - 0.5 - b.cx, qy + b.y0 - 0.5 - b.cy));
  }
  return [
    b.area / hullArea(b, w),
    b.area / (Math.PI * rMax * rMax),
    holes / (b.area + holes),
    Math.min(1, rIn / rMax),
  ];
}

interface Prototypes {
  means: Map<ShapeName, number[]>;
  spread: number[];
}

const prototypeCache = new Map<string, Prototypes>();

/** Rendered frames of one shape (sizes, scales, angles, colour pairs) and the colour label to segment. */
function calibrationFrames(shape: ShapeName, width: number, height: number): [Uint8Array, number][] {
  const out: [Uint8Array, number][] = [];
  const pairs: [ColourName, ColourName][] = [
    ['red', 'blue'],
    ['yellow', 'black'],
    ['white', 'purple'],
  ];
  for (const [colour, bg] of pairs) {
    const label = COLOURS.indexOf(colour);
    const background = { kind: 'solid', colour: bg } as const;
    for (const size of ['small', 'large'] as const) {
      const spin: ObjectSpec = { shape, colour, size, motion: 'rotate', speed: 'fast', start: [0.47, 0.53] };
      const grow: ObjectSpec = { ...spin, motion: 'grow', start: [0.52, 0.49] };
      const spun = renderVideo(
        { objects: [spin], background, cameraPan: null },
        { width, height, frames: 16 },
      );
      const grown = renderVideo(
        { objects: [grow], background, cameraPan: null },
        { width, height, frames: 5 },
      );
      for (const f of [...spun.filter((_, i) => i % 2 === 0), ...grown]) out.push([f, label]);
    }
  }
  return out;
}

/** Shape prototypes (mean descriptors) measured on rendered frames of the world, once per frame size. */
export function shapePrototypes(width: number, height: number): Prototypes {
  const key = `${width}x${height}`;
  const cached = prototypeCache.get(key);
  if (cached) return cached;
  const means = new Map<ShapeName, number[]>();
  const squares: number[] = [];
  let count = 0;
  for (const shape of SHAPES) {
    const rows: number[][] = [];
    for (const [f, label] of calibrationFrames(shape, width, height)) {
      const blob = largestBlob(labelColours(f, width * height), width, height, label);
      if (blob) rows.push(shapeFeatures(blob, width));
    }
    if (rows.length === 0)
      throw new KinemaError('ORACLE_BAD_INPUT', `oracle: no ${shape} found in calibration frames at ${key}`);
    const mean = rows[0]!.map((_, j) => rows.reduce((s, r) => s + r[j]!, 0) / rows.length);
    for (const r of rows) r.forEach((v, j) => (squares[j] = (squares[j] ?? 0) + (v - mean[j]!) ** 2));
    count += rows.length;
    means.set(shape, mean);
  }
  const spread = squares.map((s) => Math.max(Math.sqrt(s / count), 0.02));
  const protos = { means, spread };
  prototypeCache.set(key, protos);
  return protos;
}

/** Squared standardized distance of a feature vector to each shape's prototype. */
export function prototypeDistances(features: number[], protos: Prototypes): Map<ShapeName, number> {
  const out = new Map<ShapeName, number>();
  for (const [shape, mean] of protos.means) {
    out.set(
      shape,
      mean.reduce((s, m, j) => s + ((features[j]! - m) / protos.spread[j]!) ** 2, 0),
    );
  }
  return out;
}

/** Per-frame distance cap, so that one odd frame cannot outvote the rest. */
const FRAME_DISTANCE_CAP = 36;

/**
 * The video's shape: the prototype with the least total distance over the frames (each frame's distance
 * capped), and each frame's nearest prototype as a vote (reported in the details).
 */
export function classifyShapeTrack(perFrame: Map<ShapeName, number>[]): {
  shape: ShapeName | null;
  votes: Record<string, number>;
} {
  const totals = new Map<ShapeName, number>();
  const votes: Record<string, number> = {};
  for (const d of perFrame) {
    const nearest = [...d].sort((x, y) => x[1] - y[1])[0]![0];
    votes[nearest] = (votes[nearest] ?? 0) + 1;
    for (const [shape, v] of d) totals.set(shape, (totals.get(shape) ?? 0) + Math.min(v, FRAME_DISTANCE_CAP));
  }
  const best = [...totals].sort((x, y) => x[1] - y[1])[0];
  return { shape: best ? best[0] : null, votes };
}

// ---- orientation ----

/**
 * The k-fold orientation moment Σ (z − centroid)^k over the blob's pixels, for k = 3, 4, 5 (triangle;
 * square and cross; star). Its phase turns by k·θ when the shape turns by θ; its magnitude relative to
 * Σ |z|^k says how strongly the shape has that symmetry (≈ 0 for circles and rings).
 */
export function orientationMoments(b: Blob, w: number): { re: number[]; im: number[]; strength: number[] } {
  const re = [0, 0, 0];
  const im = [0, 0, 0];
  const norm = [0, 0, 0];
  for (const p of b.pixels) {
    const x = p % w;
    const dx = x + 0.5 - b.cx;
    const dy = (p - x) / w + 0.5 - b.cy;
    let zr = dx * dx - dy * dy;
    let zi = 2 * dx * dy;
    const r2 = dx * dx + dy * dy;
    let mag = r2;
    for (let j = 0; j < 3; j++) {
      const nr = zr * dx - zi * dy;
      zi = zr * dy + zi * dx;
      zr = nr;
      mag *= Math.sqrt(r2);
      re[j]! += zr;
      im[j]! += zi;
      norm[j]! += mag;
    }
  }
  return { re, im, strength: re.map((v, j) => Math.hypot(v, im[j]!) / Math.max(norm[j]!, 1e-9)) };
}

/** The classifier's features: the four descriptors and the 3-, 4- and 5-fold symmetry strengths. */
export function shapeFeatures(b: Blob, w: number): number[] {
  return [...shapeDescriptors(b, w), ...orientationMoments(b, w).strength];
}
