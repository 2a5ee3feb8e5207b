// The learnability ladder's data (issue 27): what varies on each rung, contrast groups, the held-out split.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  LADDER_DIRECTIONS,
  heldOutPair,
  ladderScoredScene,
  ladderSource,
} from '../../../src/training/data/ladder.js';
import { colourMassVelocity, velocityAlong } from '../../../src/training/data/colour_mass.js';
import { COLOUR_RGB } from '../../../src/training/data/world.js';
import type { ColourName, MotionName } from '../../../src/training/data/world.js';

const Q = { width: 64, height: 64, frames: 16 };
const O = { size: 64, frames: 16 };
const directionOf = (caption: string): MotionName =>
  LADDER_DIRECTIONS.find((d) => caption.includes(` ${d} `))!;

test('ladder L0: only the direction word varies, and the clip moves fast that way', () => {
  const src = ladderSource(0, O);
  const seen = new Set<string>();
  for (let i = 0; i < 12; i++) {
    const { caption, frames } = src(i, Q);
    assert.equal(frames.length, 16);
    const d = directionOf(caption);
    seen.add(caption.replace(d, 'DIR'));
    const { vx, vy } = colourMassVelocity(frames, 64, COLOUR_RGB.red);
    assert.ok(velocityAlong(d, vx, vy) > 1, `${caption}: ${vx}, ${vy}`);
  }
  assert.deepEqual([...seen], ['a large red circle moves DIR quickly on a blue background']);
});

test('ladder contrast groups: 4 consecutive samples are one scene in the 4 directions', () => {
  const src = ladderSource(2, { ...O, contrast: true });
  for (const group of [0, 5]) {
    const clips = [0, 1, 2, 3].map((j) => src(4 * group + j, Q));
    assert.deepEqual(
      clips.map((c) => directionOf(c.caption)),
      [...LADDER_DIRECTIONS],
    );
    // Same scene apart from the direction: on L1–L3 each colour has one held-out direction, so exactly one
    // member of a group is redrawn and the other three share shape, colour, size and background.
    const rest = clips.map((c) => c.caption.replace(directionOf(c.caption), 'DIR'));
    const most = Math.max(...rest.map((r) => rest.filter((q) => q === r).length));
    assert.equal(most, 3, rest.join(' | '));
  }
  // Without contrast, neighbours are independent scenes.
  const plain = ladderSource(2, O);
  const captions = new Set([0, 1, 2, 3, 4, 5, 6, 7].map((i) => plain(i, Q).caption));
  assert.ok(captions.size >= 5);
});

test('ladder L1–L3: held-out (colour, direction) pairs never appear in training; scored scenes keep the split', () => {
  for (const rung of [1, 3]) {
    const src = ladderSource(rung, O);
    for (let i = 0; i < 60; i++) {
      const { caption } = src(i, { ...Q, frames: 2 });
      const colour = caption.split(' ')[2] as ColourName;
      assert.equal(heldOutPair(colour, directionOf(caption)), false, caption);
    }
    for (let k = 0; k < 8; k++) {
      const held = ladderScoredScene(rung, 'heldout', k, O).objects[0]!;
      assert.equal(heldOutPair(held.colour, held.motion), true);
      const train = ladderScoredScene(rung, 'train', k, O).objects[0]!;
      assert.equal(heldOutPair(train.colour, train.motion), false);
    }
  }
  assert.throws(() => ladderSource(5, O), /ladder rung must be an integer 0–4, got 5/);
});

test('ladder fixedTrack: rung 0 is exactly 4 clips, one per direction (the 4-direction gate)', () => {
  const src = ladderSource(0, { ...O, fixedTrack: true });
  const byCaption = new Map<string, Uint8Array[]>();
  for (let i = 0; i < 16; i++) {
    const { caption, frames } = src(i, Q);
    const seen = byCaption.get(caption);
    if (seen) assert.deepEqual(frames, seen, `${caption}: always the same clip`);
    else byCaption.set(caption, frames);
  }
  assert.equal(byCaption.size, 4);
});
