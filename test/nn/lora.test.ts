import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Module } from '../../src/nn/module.js';
import type { StateDict } from '../../src/nn/module.js';
import { Conv2d, Linear } from '../../src/nn/layers.js';
import type { ConvNd } from '../../src/nn/layers.js';
import { attachLoRA, findLoRATargets, loraDelta, mergeLoRAWeight } from '../../src/nn/lora.js';
import type { LoRAGeometry } from '../../src/nn/lora.js';
import type { Tensor } from '../../src/engine/tensor.js';
import * as op from '../../src/engine/ops.js';
import { compileWithWeights } from '../../src/nn/compile.js';
import { hostTensor } from '../../src/engine/runtime.js';
import { Generator } from '../../src/engine/random.js';
import { checkOp, assertClose } from '../engine/check_op.js';

class Block extends Module {
  readonly conv: ConvNd;
  readonly toQ: Linear;
  readonly other: Linear;
  constructor() {
    super();
    this.conv = this.child('conv', Conv2d(3, 4, { kernel: 3, padding: 1, stride: 2 }));
    this.toQ = this.child('to_q', new Linear(4, 6));
    this.other = this.child('proj', new Linear(6, 5, false));
  }
  forward(x: Tensor): Tensor {
    const h = this.conv.forward(x); // [1, 4, 4, 4]
    const tokens = op.transpose(op.reshape(h, [1, 4, 16]), [0, 2, 1]);
    return this.other.forward(this.toQ.forward(tokens));
  }
}

const X = hostTensor(new Generator(3).normal(3 * 8 * 8), [1, 3, 8, 8]);

async function run(net: Block, sd: StateDict): Promise<Float32Array> {
  const fn = await compileWithWeights((x: Tensor) => net.forward(x), [{ name: 'x', shape: X.shape }], sd);
  return (await fn.exe.run({ x: X }))['out0']!.data as Float32Array;
}

function randomise(sd: StateDict, seed: number, pick: (k: string) => boolean): StateDict {
  const rng = new Generator(seed);
  const out: StateDict = new Map(sd);
  for (const [k, v] of sd)
    if (pick(k))
      out.set(
        k,
        rng.normal(v.length).map((x) => x * 0.3),
      );
  return out;
}

test('LoRA branch gradients (linear and conv) match finite differences', async () => {
  const lin: LoRAGeometry = { kind: 'linear', inFeatures: 5, outFeatures: 3 };
  await checkOp('lora linear', (x, a, b) => loraDelta(x!, a!, b!, lin, 0.75), [
    [2, 4, 5],
    [2, 5],
    [3, 2],
  ]);
  const conv: LoRAGeometry = {
    kind: 'conv',
    inChannels: 2,
    outChannels: 3,
    kernel: [3, 3],
    stride: [2, 2],
    padding: [1, 1],
    dilation: [1, 1],
    groups: 1,
  };
  await checkOp('lora conv', (x, a, b) => loraDelta(x!, a!, b!, conv, 1.5), [
    [1, 2, 5, 5],
    [2, 2, 3, 3],
    [3, 2, 1, 1],
  ]);
});

test('a fresh LoRA (B = 0) leaves the output unchanged; trained factors equal the merged weight', async () => {
  const base = new Block();
  const baseSd = base.initParameters(1);
  const expected = await run(base, baseSd);

  const net = new Block();
  const { branches, init } = attachLoRA(net, { rank: 2, targets: ['conv', 'to_q'], alpha: 4 });
  assert.deepEqual([...branches.keys()], ['conv', 'to_q']);
  assert.equal(branches.get('to_q')!.scale, 2);
  assert.ok(init.has('to_q.lora_0.lora_A.weight') && init.has('conv.lora_0.lora_B.weight'));
  const sd: StateDict = new Map([...baseSd, ...init]);
  net.validateStateDict(sd);
  assert.deepEqual(await run(net, sd), expected, 'B = 0 must give the base output bit for bit');

  // Non-zero factors: the unmerged graph equals the plain layer with W + s·B·A.
  const trained = randomise(sd, 5, (k) => k.includes('.lora_'));
  const unmerged = await run(net, trained);
  assert.ok(Math.max(...unmerged.map((v, i) => Math.abs(v - expected[i]!))) > 1e-2, 'the branch changes y');
  const merged: StateDict = new Map(baseSd);
  for (const [path, b] of branches) {
    const w = `${path}.weight`;
    const a = trained.get(`${path}.lora_0.lora_A.weight`)!;
    const up = trained.get(`${path}.lora_0.lora_B.weight`)!;
    merged.set(w, mergeLoRAWeight(baseSd.get(w)!, b.geometry, a, up, b.rank, b.scale));
  }
  assertClose(await run(base, merged), unmerged, 1e-5, 'merged vs unmerged');

  // Scale 0 with non-zero factors is the base output exactly.
  for (const b of branches.values()) b.scale = 0;
  assert.deepEqual(await run(net, trained), expected, 'scale 0 must give the base output bit for bit');
});

test('two branches on one layer add up; targets are matched by path suffix and checked', () => {
  const net = new Block();
  const first = attachLoRA(net, { rank: 1, targets: ['to_q'] });
  const second = attachLoRA(net, { rank: 3, targets: ['to_q'] });
  assert.equal(net.toQ.loraBranches.length, 2);
  assert.ok(first.init.has('to_q.lora_0.lora_A.weight'));
  assert.deepEqual(second.init.get('to_q.lora_1.lora_A.weight')!.length, 3 * 4);
  assert.throws(
    () => findLoRATargets(new Block(), ['to_k'], { requireEveryTarget: true }),
    /to_k.*match no layer/,
  );
  assert.throws(() => findLoRATargets(new Block(), ['nothing']), /match no layer/);
  assert.deepEqual([...findLoRATargets(new Block(), ['q', 'to_q']).keys()], ['to_q']);
  assert.throws(() => attachLoRA(new Block(), { rank: 0, targets: ['to_q'] }), /positive integer/);
});
