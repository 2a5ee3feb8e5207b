import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { raftPadding, RaftEstimator } from '../../src/metrics/raft.js';
import { writeOnnxModel, type Dim } from './onnx_builder.js';
import { rng, solidFrame } from './synthetic.js';

/** Stand-in "RAFT": flow = (image2 − image1) in channels R and G, so the expected output is known exactly. */
function fakeRaft(path: string, h: Dim, w: Dim): void {
  writeOnnxModel(path, {
    inputs: [
      ['image1', [1, 3, h, w]],
      ['image2', [1, 3, h, w]],
    ],
    outputs: [['flow', [1, 2, h, w]]],
    nodes: [
      { op: 'Sub', inputs: ['image2', 'image1'], outputs: ['diff'] },
      { op: 'Slice', inputs: ['diff'], outputs: ['flow'], ints: { axes: [1], starts: [0], ends: [2] } },
    ],
  });
}

test('raftPadding pads to multiples of 8, split evenly (extra pixel bottom/right)', () => {
  assert.deepEqual(raftPadding(13, 10), { left: 1, right: 2, top: 3, bottom: 3 });
  assert.deepEqual(raftPadding(16, 720), { left: 0, right: 0, top: 0, bottom: 0 });
});

test('RAFT estimator: input order, [0,255] and [-1,1] ranges, padding and cropping', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-raft-'));
  try {
    const path = join(dir, 'raft.onnx');
    fakeRaft(path, 'H', 'W');
    const w = 13;
    const h = 10;
    const r = rng(5);
    const a = Uint8Array.from({ length: w * h * 3 }, () => Math.floor(r() * 256));
    const b = Uint8Array.from({ length: w * h * 3 }, () => Math.floor(r() * 256));
    const raft = await RaftEstimator.load(path);
    const f = await raft.estimate(a, b, w, h);
    assert.equal(f.u.length, w * h);
    for (let i = 0; i < w * h; i++) {
      assert.equal(f.u[i], b[i * 3]! - a[i * 3]!);
      assert.equal(f.v[i], b[i * 3 + 1]! - a[i * 3 + 1]!);
    }
    await raft.dispose();
    const tv = await RaftEstimator.load(path, { inputRange: '-1-1' });
    const g = await tv.estimate(a, b, w, h);
    for (let i = 0; i < w * h; i++) assert.ok(Math.abs(g.u[i]! - ((b[i * 3]! - a[i * 3]!) * 2) / 255) < 1e-5);
    await tv.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('RAFT estimator with a fixed-size model resizes frames and rescales the flow', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-raft-'));
  try {
    const path = join(dir, 'raft_fixed.onnx');
    fakeRaft(path, 16, 24);
    const raft = await RaftEstimator.load(path);
    // Uniform frames: the fake flow is (20, 8) at model resolution, rescaled by 12/24 and 10/16.
    const f = await raft.estimate(solidFrame(12, 10, [10, 10, 0]), solidFrame(12, 10, [30, 18, 0]), 12, 10);
    assert.ok(f.u.every((x) => Math.abs(x - 10) < 1e-5));
    assert.ok(f.v.every((x) => Math.abs(x - 5) < 1e-5));
    await raft.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('RAFT loader rejects models with the wrong interface', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-raft-'));
  try {
    const path = join(dir, 'one_input.onnx');
    writeOnnxModel(path, {
      inputs: [['x', [1, 3, 'H', 'W']]],
      outputs: [['y', [1, 3, 'H', 'W']]],
      nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }],
    });
    await assert.rejects(RaftEstimator.load(path), /has 1 inputs, expected 2/);
    const p2 = join(dir, 'no_flow.onnx');
    writeOnnxModel(p2, {
      inputs: [
        ['a', [1, 3, 'H', 'W']],
        ['b', [1, 3, 'H', 'W']],
      ],
      outputs: [['y', [1, 3, 'H', 'W']]],
      nodes: [{ op: 'Sub', inputs: ['b', 'a'], outputs: ['y'] }],
    });
    const raft = await RaftEstimator.load(p2);
    await assert.rejects(
      raft.estimate(new Uint8Array(192), new Uint8Array(192), 8, 8),
      /no float32 output shaped \[1, 2, 8, 8\]/,
    );
    await raft.dispose();
    await assert.rejects(RaftEstimator.load(join(dir, 'nope.onnx')), /cannot load ONNX model/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
