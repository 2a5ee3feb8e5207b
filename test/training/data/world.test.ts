import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator } from '../../../src/engine/random.js';
import {
  COLOURS,
  COLOUR_RGB,
  MIN_CONTRAST,
  backgroundColours,
  contrastsWith,
  isHeldOut,
  sampleScene,
  toFloatCHW,
  worldSample,
  type SceneSpec,
} from '../../../src/training/data/world.js';
import { parsePrompt } from '../../../src/training/data/captions.js';
import { objectTrack } from '../../../src/training/data/render.js';

const opts = { width: 64, height: 64, frames: 16 };

test('worldSample is deterministic by (seed, index) and differs across indices and seeds', () => {
  const a = worldSample(42, 1234, opts);
  const b = worldSample(42, 1234, opts);
  assert.equal(a.caption, b.caption);
  assert.deepEqual(a.scene, b.scene);
  assert.equal(a.frames.length, 16);
  a.frames.forEach((f, i) => assert.ok(Buffer.from(f).equals(Buffer.from(b.frames[i]!)), `frame ${i}`));
  const captions = new Set(Array.from({ length: 20 }, (_, i) => worldSample(42, i, opts).caption));
  assert.ok(captions.size >= 19);
  assert.notDeepEqual(worldSample(43, 1234, opts).scene, a.scene);
  assert.throws(() => worldSample(-1, 0, opts), /seed must be a non-negative safe integer/);
  assert.throws(() => worldSample(1, 0.5, opts), /index must be a non-negative safe integer/);
});

test("held-out rule: 'train' never yields a held-out scene, 'heldout' always does", () => {
  const scene = (
    colour: 'green' | 'purple',
    shape: 'triangle' | 'circle',
    motion: 'up-left' | 'down',
  ): SceneSpec => ({
    objects: [{ shape, colour, motion, size: 'small', speed: 'slow', start: [0.5, 0.5] }],
    background: { kind: 'solid', colour: 'white' },
    cameraPan: null,
  });
  assert.equal(isHeldOut(scene('green', 'triangle', 'down')), true);
  assert.equal(isHeldOut(scene('purple', 'circle', 'up-left')), true);
  assert.equal(isHeldOut(scene('purple', 'circle', 'down')), false);
  assert.equal(isHeldOut(scene('green', 'circle', 'up-left')), false);
  const rng = new Generator(9);
  let heldOutInAny = 0;
  for (let i = 0; i < 5000; i++) {
    assert.equal(isHeldOut(sampleScene(rng, { split: 'train' })), false);
    if (isHeldOut(sampleScene(rng, { split: 'any' }))) heldOutInAny++;
  }
  assert.ok(heldOutInAny > 100, `'any' reaches held-out scenes (${heldOutInAny} of 5000)`);
  const kinds = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const s = sampleScene(rng, { split: 'heldout' });
    assert.equal(isHeldOut(s), true);
    kinds.add(
      s.objects.some((o) => o.shape === 'triangle' && o.colour === 'green') ? 'triangle' : 'purple-up',
    );
  }
  assert.equal(kinds.size, 2, 'both held-out rules occur');
  for (let i = 0; i < 300; i++) {
    assert.equal(isHeldOut(worldSample(5, i, { ...opts, frames: 2 }).scene), false);
    assert.equal(isHeldOut(worldSample(5, i, { ...opts, frames: 2, split: 'heldout' }).scene), true);
  }
});

test('sampled scenes: distinct object colours, background contrast, objects inside the frame and apart', () => {
  const rng = new Generator(17);
  let two = 0;
  for (let i = 0; i < 2000; i++) {
    const s = sampleScene(rng, { split: 'any' });
    const colours = s.objects.map((o) => o.colour);
    assert.equal(new Set(colours).size, colours.length);
    for (const c of colours) {
      assert.ok(contrastsWith(c, s.background));
      assert.ok(!backgroundColours(s.background).includes(c));
    }
    if (s.cameraPan) assert.ok(s.background.kind === 'stripes' || s.background.kind === 'checker');
    const tracks = s.objects.map((o) => objectTrack(o, 16, 64, 64, false));
    for (const track of tracks) {
      for (const p of track) {
        assert.ok(
          p.x - p.radius >= 0.99 &&
            p.x + p.radius <= 64.01 &&
            p.y - p.radius >= 0.99 &&
            p.y + p.radius <= 64.01,
        );
      }
    }
    if (tracks.length === 2) {
      two++;
      tracks[0]!.forEach((p, t) => {
        const q = tracks[1]![t]!;
        assert.ok(Math.hypot(p.x - q.x, p.y - q.y) >= p.radius + q.radius);
      });
    }
  }
  assert.ok(two > 400 && two < 900, `about a third of scenes have two objects (${two})`);
  for (const a of COLOURS) {
    const contrasting = COLOURS.filter((c) => contrastsWith(c, { kind: 'solid', colour: a }));
    assert.ok(contrasting.length >= 7, a);
    assert.ok(!contrasting.includes(a));
  }
  assert.ok(MIN_CONTRAST >= 100);
});

test('trackCentring: straight-line tracks centred along the axes they move on; the rest of the scene kept', () => {
  const track = (s: SceneSpec) => objectTrack(s.objects[0]!, 16, 64, 64, false);
  const centre = (xs: number[]) => (Math.min(...xs) + Math.max(...xs)) / 2;
  let linear = 0;
  let leftwards = 0;
  for (let i = 0; i < 400; i++) {
    // ('any': the split's rejection of held-out scenes could take other draws after a two-object scene.)
    const a = sampleScene(new Generator(1000 + i), { split: 'any' });
    const b = sampleScene(new Generator(1000 + i), { split: 'any', trackCentring: 1e-9 });
    const q = sampleScene(new Generator(1000 + i), { split: 'any', trackCentring: 0.25 });
    if (a.objects.length !== 1 || b.objects.length !== 1) continue;
    const [o, c] = [a.objects[0]!, b.objects[0]!];
    assert.deepEqual({ ...c, start: o.start }, o, 'same object but for its start');
    assert.deepEqual({ ...b, objects: a.objects }, a, 'same background and camera');
    const t = track(b);
    const horizontal = /left|right/.test(o.motion);
    const vertical = /up|down/.test(o.motion);
    if (o.motion !== 'orbit' && o.motion !== 'bounce' && (horizontal || vertical)) linear++;
    // Along a moving axis the track's extent is centred in the frame; on a still axis the start is unchanged.
    for (const [axis, moves] of [
      [0, horizontal],
      [1, vertical],
    ] as const) {
      if (moves) {
        const mid = centre(t.map((p) => (axis === 0 ? p.x : p.y)));
        assert.ok(Math.abs(mid - 32) < 1e-3, `${o.motion}: track centred (${mid})`);
      } else assert.equal(c.start[axis], o.start[axis], `${o.motion}: axis ${axis} kept`);
    }
    // With k = 0.25 an object moving left starts right of the centre and ends left of it.
    if (q.objects.length === 1 && q.objects[0]!.motion === 'left') {
      const p = track(q);
      assert.ok(p[0]!.x > 32 && p[15]!.x < 32, `left: ${p[0]!.x} → ${p[15]!.x}`);
      leftwards++;
    }
  }
  assert.ok(linear > 100 && leftwards > 5, `${linear} straight-line scenes, ${leftwards} moving left`);
  assert.throws(
    () => sampleScene(new Generator(1), { trackCentring: 0 }),
    /trackCentring must be .* \(0, 1\]/,
  );
  assert.throws(() => sampleScene(new Generator(1), { trackCentring: 1.5 }), /trackCentring/);
});

test('image mode gives one frame and a caption of a still scene', () => {
  for (let i = 0; i < 50; i++) {
    const s = worldSample(3, i, { ...opts, imageMode: true });
    assert.equal(s.frames.length, 1);
    assert.equal(s.frames[0]!.length, 64 * 64 * 3);
    const parsed = parsePrompt(s.caption);
    assert.equal(parsed.unknownWords.length, 0, s.caption);
    assert.equal(parsed.objects.length, s.scene.objects.length, s.caption);
    for (const o of parsed.objects) assert.equal(o.motion, undefined, s.caption);
    assert.equal(parsed.cameraPan, null);
  }
});

test('toFloatCHW lays out [F, 3, H, W] in [-1, 1]', () => {
  const f0 = new Uint8Array([0, 255, 51, 102, 153, 204]); // 2×1: pixel 0 = (0, 255, 51), pixel 1 = (102, 153, 204)
  const f1 = new Uint8Array([255, 0, 0, 0, 0, 255]);
  const out = toFloatCHW([f0, f1], 2, 1);
  const expected = [0, 102, 255, 153, 51, 204, 255, 0, 0, 0, 0, 255].map((v) => v / 127.5 - 1);
  assert.equal(out.length, 12);
  out.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-6, `${i}: ${v}`));
  assert.equal(out[0], -1);
  assert.equal(out[2], 1);
  assert.throws(() => toFloatCHW([f0], 3, 1), /frame 0 has 6 bytes, expected 9/);
  const sample = worldSample(1, 0, opts);
  const t = toFloatCHW(sample.frames, 64, 64);
  assert.equal(t.length, 16 * 3 * 64 * 64);
  const bg = sample.scene.background;
  if (bg.kind === 'solid') assert.ok(Math.abs(t[0]! - (COLOUR_RGB[bg.colour][0] / 127.5 - 1)) < 1e-6);
});
