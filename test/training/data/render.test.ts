import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  renderVideo,
  COLOUR_RGB,
  type ObjectSpec,
  type SceneSpec,
  type ColourName,
} from '../../../src/training/data/world.js';

const W = 64;

function scene(o: Partial<ObjectSpec>, bg: ColourName = 'blue'): SceneSpec {
  const object: ObjectSpec = {
    shape: 'circle',
    colour: 'red',
    size: 'large',
    motion: 'rotate',
    speed: 'slow',
    start: [0.5, 0.5],
    ...o,
  };
  return { objects: [object], background: { kind: 'solid', colour: bg }, cameraPan: null };
}

/** Coverage of the object per pixel, recovered from the red channel of red-on-blue frames. */
function coverage(frame: Uint8Array, width = W): { area: number; cx: number; cy: number } {
  const bg = COLOUR_RGB.blue[0];
  const fg = COLOUR_RGB.red[0];
  let area = 0;
  let sx = 0;
  let sy = 0;
  for (let p = 0; p < frame.length / 3; p++) {
    const a = (frame[3 * p]! - bg) / (fg - bg);
    const x = (p % width) + 0.5;
    const y = Math.floor(p / width) + 0.5;
    area += a;
    sx += a * x;
    sy += a * y;
  }
  return { area, cx: sx / area, cy: sy / area };
}

test('shapes have their analytic areas (large = 24 px across at 64×64) and anti-aliased edges', () => {
  const across = 24;
  const expected: Record<string, number> = {
    circle: Math.PI * 12 * 12,
    square: (0.84 * across) ** 2,
    ring: Math.PI * ((0.5 * across) ** 2 - (0.28 * across) ** 2),
    cross: 2 * across * (0.34 * across) - (0.34 * across) ** 2,
    triangle: ((3 * Math.sqrt(3)) / 4) * (0.55 * across) ** 2,
    star: 5 * (0.55 * across) * (0.25 * across) * Math.sin(Math.PI / 5),
  };
  for (const [shape, area] of Object.entries(expected)) {
    const [frame] = renderVideo(scene({ shape: shape as ObjectSpec['shape'], start: [0.52, 0.47] }), {
      width: W,
      height: W,
      frames: 1,
    });
    const measured = coverage(frame!);
    assert.ok(Math.abs(measured.area - area) / area < 0.02, `${shape}: area ${measured.area} vs ${area}`);
    assert.ok(Math.abs(measured.cx - 0.52 * W) < 0.05 && Math.abs(measured.cy - 0.47 * W) < 0.05, shape);
    const partial = Array.from({ length: W * W }, (_, p) => frame![3 * p]!).filter(
      (r) => r > COLOUR_RGB.blue[0] + 10 && r < COLOUR_RGB.red[0] - 10,
    );
    assert.ok(partial.length > 20, `${shape}: edge pixels are blended`);
  }
  const [small] = renderVideo(scene({ size: 'small' }), { width: W, height: W, frames: 1 });
  assert.ok(Math.abs(coverage(small!).area - Math.PI * 49) < 2);
});

test('linear motions run at 0.6 (slow) and 1.5 (fast) px/frame scaled by size/64, diagonals included', () => {
  const cases: [ObjectSpec['motion'], ObjectSpec['speed'], number, number][] = [
    ['right', 'fast', 1.5, 0],
    ['left', 'slow', -0.6, 0],
    ['up', 'fast', 0, -1.5],
    ['down-left', 'fast', -1.5 / Math.SQRT2, 1.5 / Math.SQRT2],
  ];
  for (const [motion, speed, vx, vy] of cases) {
    const frames = renderVideo(scene({ motion, speed, size: 'small' }), { width: W, height: W, frames: 16 });
    const a = coverage(frames[0]!);
    const b = coverage(frames[15]!);
    assert.ok(Math.abs(b.cx - a.cx - 15 * vx) < 0.05 && Math.abs(b.cy - a.cy - 15 * vy) < 0.05, motion);
  }
  const big = renderVideo(scene({ motion: 'right', speed: 'fast', size: 'small' }), {
    width: 128,
    height: 128,
    frames: 16,
  });
  assert.ok(Math.abs(coverage(big[15]!, 128).cx - coverage(big[0]!, 128).cx - 45) < 0.1);
});

test('linear motion reflects at the walls, so the object never leaves the frame', () => {
  const frames = renderVideo(scene({ motion: 'right', speed: 'fast', start: [0.7, 0.5] }), {
    width: W,
    height: W,
    frames: 40,
  });
  const xs = frames.map((f) => coverage(f).cx);
  for (const x of xs) assert.ok(x >= 12 - 0.05 && x <= W - 12 + 0.05, `x ${x}`);
  assert.ok(Math.max(...xs) > W - 12.5, 'reaches the right wall');
  assert.ok(xs[39]! < xs[20]!, 'comes back');
});

test('grow, shrink, bounce, orbit and rotate follow their definitions', () => {
  const opts = { width: W, height: W, frames: 16 };
  const grow = renderVideo(scene({ motion: 'grow', speed: 'fast' }), opts).map((f) => coverage(f).area);
  assert.ok(
    Math.abs(grow[0]! - Math.PI * (12 * 0.6) ** 2) < 1.5 &&
      Math.abs(grow[15]! - Math.PI * (12 * 1.4) ** 2) < 2,
  );
  const shrink = renderVideo(scene({ motion: 'shrink', speed: 'slow' }), opts).map((f) => coverage(f).area);
  assert.ok(Math.abs(shrink[0]! / shrink[15]! - (1.2 / 0.8) ** 2) < 0.03);
  const bounce = renderVideo(scene({ motion: 'bounce', speed: 'slow', size: 'small' }), opts).map((f) =>
    coverage(f),
  );
  assert.ok(Math.abs(bounce[6]!.cy - (bounce[0]!.cy - 10)) < 0.05, 'apex 10 px up at t = P/2');
  assert.ok(
    Math.abs(bounce[12]!.cy - bounce[0]!.cy) < 0.05 && Math.abs(bounce[12]!.cx - bounce[0]!.cx) < 0.05,
  );
  const orbit = renderVideo(scene({ motion: 'orbit', speed: 'fast', size: 'small' }), opts).map((f) =>
    coverage(f),
  );
  const centre = [orbit[0]!.cx - 10, orbit[0]!.cy];
  for (const p of orbit) assert.ok(Math.abs(Math.hypot(p.cx - centre[0]!, p.cy - centre[1]!) - 10) < 0.1);
  assert.ok(
    Math.abs(orbit[3]!.cy - (orbit[0]!.cy - 10)) < 0.1,
    'a quarter turn in 3 frames, counter-clockwise',
  );
  const spin = renderVideo(scene({ shape: 'square', motion: 'rotate', speed: 'fast' }), opts);
  const c0 = coverage(spin[0]!);
  const c15 = coverage(spin[15]!);
  assert.ok(Math.abs(c0.cx - c15.cx) < 0.05 && Math.abs(c0.area - c15.area) < 2, 'rotates in place');
  const quarter = Math.max(...spin[0]!.map((v, i) => Math.abs(v - spin[15]![i]!)));
  assert.ok(quarter <= 1, '6°/frame: a quarter turn after 15 frames looks the same');
  const slow = renderVideo(scene({ shape: 'square', motion: 'rotate', speed: 'slow' }), opts);
  const red = (f: Uint8Array): number => f[3 * (31 * W + 44)]!;
  assert.equal(red(slow[0]!), COLOUR_RGB.blue[0], 'upright: 12.5 px right of centre is outside');
  assert.equal(red(slow[15]!), COLOUR_RGB.red[0], '3°/frame: at 45° the corner reaches 14.25 px');
  assert.deepEqual(spin[0]!.length, W * W * 3);
});

test('backgrounds: gradient ends, stripes and checkerboard averages, camera pan scrolls the texture', () => {
  const base = scene({ size: 'small', start: [0.1, 0.1] });
  const grad = renderVideo(
    { ...base, background: { kind: 'gradient', from: 'black', to: 'white', vertical: true } },
    {
      width: W,
      height: W,
      frames: 1,
    },
  )[0]!;
  const at = (f: Uint8Array, x: number, y: number): number[] => [
    ...f.subarray(3 * (y * W + x), 3 * (y * W + x) + 3),
  ];
  const lerp = (u: number): number => Math.round(25 + (245 - 25) * u);
  assert.deepEqual(at(grad, 40, 0), [lerp(0.5 / 64), lerp(0.5 / 64), lerp(0.5 / 64)]);
  assert.deepEqual(at(grad, 40, 63), [lerp(63.5 / 64), lerp(63.5 / 64), lerp(63.5 / 64)]);
  const stripes = { ...base, background: { kind: 'stripes', a: 'black', b: 'white', period: 16 } } as const;
  const still = renderVideo(stripes, { width: W, height: W, frames: 1 })[0]!;
  assert.deepEqual(at(still, 36, 40), [25, 25, 25], 'x in [32, 40): a band');
  assert.deepEqual(at(still, 44, 40), [245, 245, 245], 'x in [40, 48): b band');
  const pan = renderVideo({ ...stripes, cameraPan: 'left' }, { width: W, height: W, frames: 9 });
  assert.deepEqual(at(pan[8]!, 44, 40), [25, 25, 25], 'camera pans left: content moves right 1 px/frame');
  assert.deepEqual(at(pan[8]!, 52, 40), [245, 245, 245]);
  const half = renderVideo({ ...stripes, cameraPan: 'right' }, { width: W, height: W, frames: 2 })[1]!;
  assert.deepEqual(at(half, 39, 40), [245, 245, 245], 'pan right: the band edge moved to x = 39');
  const checker = renderVideo(
    { ...base, background: { kind: 'checker', a: 'black', b: 'white', period: 16 } },
    {
      width: W,
      height: W,
      frames: 1,
    },
  )[0]!;
  assert.deepEqual(at(checker, 40, 40), [25, 25, 25], 'cells (5, 5): both odd → a');
  assert.deepEqual(at(checker, 40, 48), [245, 245, 245], 'cells (5, 6) → b');
  assert.deepEqual(at(checker, 33, 40), [245, 245, 245], 'cells (4, 5) → b');
});

test('rendering is deterministic and rejects bad input', () => {
  const s = scene({ shape: 'star', motion: 'orbit', speed: 'fast' });
  const opts = { width: W, height: W, frames: 16 };
  assert.deepEqual(renderVideo(s, opts), renderVideo(s, opts));
  assert.throws(() => renderVideo(s, { ...opts, frames: 0 }), /frames must be an integer/);
  assert.throws(() => renderVideo(s, { ...opts, width: 10.5 }), /width must be an integer/);
  assert.throws(() => renderVideo(scene({ colour: 'mauve' as ColourName }), opts), /colour must be one of/);
  assert.throws(() => renderVideo({ ...s, objects: [] }, opts), /1 or 2 objects/);
});
