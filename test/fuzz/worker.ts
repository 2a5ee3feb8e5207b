// Runs fuzz batches in a child process for scripts/fuzz.ts (`worker.ts <target>`). Each input is sent to the
// parent before it runs, so when a case spins synchronously (which no in-process timeout can stop) or crashes
// the process natively (a decoder's memory corruption), the parent still knows the input that did it.
// One child serves every batch of one target until it dies or is killed.
import { prepareVideoBases, TARGETS } from './targets.js';
import { fuzzTarget } from './runner.js';

const send = (m: unknown): void => void process.send!(m);
const target = TARGETS.find((t) => t.name === process.argv[2]);
if (!target) throw new Error(`unknown target ${process.argv[2]}`);
await prepareVideoBases();
process.on('message', async ({ seed, runs }: { seed: number; runs: number }) => {
  const result = await fuzzTarget(target, seed, runs, (input) => send({ kind: 'case', input }));
  send({ kind: 'done', result });
});
send({ kind: 'ready' });
