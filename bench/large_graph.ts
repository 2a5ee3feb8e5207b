// `npx tsx bench/large_graph.ts`: a model whose weights exceed protobuf's 2 GB limit (one 2.46 GB matrix) is
// emitted with ONNX external data, loaded by ONNX Runtime and checked against a host computation.
import { Builder, Tensor, withBuilder } from '../src/engine/tensor.js';
import * as op from '../src/engine/ops.js';
import { compile, hostTensor } from '../src/engine/runtime.js';

const rows = 150_000;
const cols = 4096;
const b = new Builder();
const program = withBuilder(b, () => {
  const x = new Tensor(b.addInput('x', [1, rows], 'float32', 'input'));
  const w = new Tensor(b.weight('w', [rows, cols], 'float32'));
  return b.build([{ name: 'y', atom: op.matmul(x, w).atom }]);
});
const w = new Float32Array(rows * cols);
for (let r = 0; r < rows; r++) w[r * cols + (r % cols)] = 1;
const x = Float32Array.from({ length: rows }, (_, i) => (i % 7) - 3);
const t0 = performance.now();
const exe = await compile(program, { initializers: new Map([['w', w]]) });
const t1 = performance.now();
const y = (await exe.run({ x: hostTensor(x, [1, rows]) }))['y']!.data as Float32Array;
const expect = new Float64Array(cols);
for (let r = 0; r < rows; r++) expect[r % cols] += x[r]!;
let worst = 0;
for (let c = 0; c < cols; c++) worst = Math.max(worst, Math.abs(y[c]! - expect[c]!));
console.log(
  `weights ${(w.byteLength / 2 ** 30).toFixed(2)} GiB; session created in ${((t1 - t0) / 1000).toFixed(1)} s; max abs error ${worst}`,
);
if (worst !== 0) process.exit(1);
