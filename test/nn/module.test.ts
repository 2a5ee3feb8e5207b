import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Module, ModuleList, StateDictError } from '../../src/nn/module.js';
import { Conv2d, GroupNorm, LayerNorm, Linear } from '../../src/nn/layers.js';
import type { ConvNd } from '../../src/nn/layers.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { compileWithWeights } from '../../src/nn/compile.js';
import { hostTensor } from '../../src/engine/runtime.js';

class Net extends Module {
  readonly conv: ConvNd;
  readonly blocks: ModuleList<Linear>;
  readonly norm: GroupNorm;
  readonly ln: LayerNorm;
  constructor() {
    super();
    this.conv = this.child('conv_in', Conv2d(3, 4, { kernel: 3, padding: 1 }));
    this.norm = this.child('norm', new GroupNorm(2, 4));
    this.blocks = this.child('blocks', new ModuleList([new Linear(4, 4), new Linear(4, 2, false)]));
    this.ln = this.child('ln', new LayerNorm(2));
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(x);
  }
}

test('parameter names follow PyTorch state_dict keys', () => {
  const net = new Net();
  assert.deepEqual(
    [...net.namedParameters().keys()],
    [
      'conv_in.weight',
      'conv_in.bias',
      'norm.weight',
      'norm.bias',
      'blocks.0.weight',
      'blocks.0.bias',
      'blocks.1.weight',
      'ln.weight',
      'ln.bias',
    ],
  );
  assert.equal(net.parameterCount(), 4 * 3 * 9 + 4 + 4 + 4 + 16 + 4 + 8 + 2 + 2);
  assert.deepEqual(net.namedParameters().get('conv_in.weight')?.shape, [4, 3, 3, 3]);
});

test('strict state dict loading names missing, unexpected and mis-shaped keys', () => {
  const net = new Net();
  const sd = net.initParameters(1);
  net.validateStateDict(sd);
  const missing = new Map(sd);
  missing.delete('blocks.1.weight');
  assert.throws(
    () => net.validateStateDict(missing),
    (e: unknown) => e instanceof StateDictError && /missing keys: blocks\.1\.weight/.test(e.message),
  );
  const extra = new Map(sd).set('blocks.2.weight', new Float32Array(4));
  assert.throws(() => net.validateStateDict(extra), /unexpected keys: blocks\.2\.weight/);
  net.validateStateDict(extra, { strict: false });
  const shapes = new Map([...net.namedParameters()].map(([k, s]) => [k, [...s.shape]]));
  shapes.set('conv_in.weight', [4, 3, 1, 9]);
  assert.throws(
    () => net.validateStateDict(sd, { shapes }),
    /shape mismatch for 'conv_in\.weight': checkpoint has \[4,3,1,9\], model expects \[4,3,3,3\]/,
  );
});

test('a Linear layer computes x·Wᵀ + b with the bound weights', async () => {
  const lin = new Linear(3, 2);
  const sd = new Map([
    ['weight', Float32Array.from([1, 2, 3, 4, 5, 6])],
    ['bias', Float32Array.from([0.5, -1])],
  ]);
  const { exe } = await compileWithWeights((x) => lin.forward(x!), [{ name: 'x', shape: [1, 3] }], sd);
  const out = await exe.run({ x: hostTensor(Float32Array.from([1, 0, -1]), [1, 3]) });
  assert.deepEqual([...(out['out0']!.data as Float32Array)], [1 - 3 + 0.5, 4 - 6 - 1]);
  assert.throws(
    () => lin.validateStateDict(new Map([['weight', new Float32Array(6)]])),
    /missing keys: bias/,
  );
});
