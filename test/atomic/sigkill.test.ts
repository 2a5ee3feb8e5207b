// Atomic writes under SIGKILL: each writer (video file, PNG frames folder, safetensors file — checkpoints and
// `kinema convert` use it —, exported component folder) runs in a child that rewrites the same destination
// over and over; the child is killed with SIGKILL at spread-out moments. After every kill the destination is
// either absent (killed before the first write finished) or one complete, consistent version — never a
// partial file, a folder missing frames, or new weights beside an old config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readAllFrames } from '../../src/io/video/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';

const FRAMES = 24;
const TENSOR_LEN = 4_000_000;
const KILLS = 6;

/** Starts the writer child; resolves once it has begun writing, with a kill function. */
function startWriter(
  kind: string,
  dest: string,
): Promise<{ kill: () => Promise<void>; firstWriteMs: Promise<number> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/atomic/writer_child.ts', kind, dest], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  let resolveFirst: (ms: number) => void = () => {};
  const firstWriteMs = new Promise<number>((r) => (resolveFirst = r));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  return new Promise((resolve, reject) => {
    child.on(
      'exit',
      (code) => code !== null && reject(new Error(`writer ${kind} exited with ${code}: ${out}`)),
    );
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /first write took (\d+) ms/.exec(out);
      if (m) resolveFirst(Number(m[1]));
      if (out.includes('writing')) {
        resolve({
          kill: async () => {
            child.kill('SIGKILL');
            await exited;
          },
          firstWriteMs,
        });
      }
    });
  });
}

type Check = (dest: string) => Promise<string>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Kills the writer at KILLS moments spread over two write durations; checks the destination after each. */
async function killTest(kind: string, name: string, check: Check): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `kinema-kill-${kind}-`));
  try {
    const dest = join(dir, name);
    // One unkilled write measures how long a write takes here.
    const probe = await startWriter(kind, dest);
    const writeMs = await probe.firstWriteMs;
    await probe.kill();
    rmSync(dir, { recursive: true, force: true });
    const seen: string[] = [];
    for (let i = 0; i < KILLS; i++) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const w = await startWriter(kind, dest);
      await sleep(((i + 0.5) / KILLS) * 2 * writeMs); // from mid-first-write to mid-second-write
      await w.kill();
      const state = existsSync(dest) ? await check(dest) : 'absent';
      seen.push(state);
      // Nothing else appears under a visible name (temp files and backups are hidden, `.name.….partial`).
      assert.deepEqual(
        readdirSync(dir).filter((n) => !n.startsWith('.') && n !== name),
        [],
        kind,
      );
    }
    // Kills past the first write find a complete version.
    assert.ok(
      seen.some((s) => s.startsWith('version')),
      `${kind}: ${seen.join(', ')}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The version a uniform frame value encodes (version × 10), within codec error. */
function versionOfFrames(frames: Uint8Array[]): number {
  const first = frames[0]!;
  return Math.round(first[first.length >> 1]! / 10);
}

test('SIGKILL during a video write leaves no partial MP4', async () => {
  await killTest('mp4', 'clip.mp4', async (dest) => {
    const { frames } = await readAllFrames(dest);
    assert.equal(frames.length, FRAMES, 'a complete video');
    return `version ${versionOfFrames(frames)}`;
  });
});

test('SIGKILL during a PNG-frames write leaves no folder with missing frames', async () => {
  await killTest('png', 'frames', async (dest) => {
    assert.ok(existsSync(join(dest, 'video.json')), 'video.json present');
    const { frames } = await readAllFrames(dest);
    assert.equal(frames.length, FRAMES);
    return `version ${versionOfFrames(frames)}`;
  });
});

test('SIGKILL during a safetensors write (checkpoints, convert) leaves no partial file', async () => {
  await killTest('safetensors', 'ckpt.safetensors', async (dest) => {
    const f = SafetensorsFile.open(dest);
    try {
      const x = f.readFloat32('x');
      assert.equal(x.length, TENSOR_LEN);
      assert.ok(
        x.every((v) => v === x[0]),
        'one version throughout',
      );
      return `version ${x[0]}`;
    } finally {
      f.close();
    }
  });
});

test('SIGKILL during a component export leaves the old folder or the new one, never a mix', async () => {
  await killTest('export', 'unet', async (dest) => {
    const config = JSON.parse(readFileSync(join(dest, 'config.json'), 'utf8')) as { version: number };
    const f = SafetensorsFile.open(join(dest, 'diffusion_pytorch_model.safetensors'));
    try {
      const w = f.readFloat32('weight'); // fp16 on disk, upcast
      assert.equal(w[0], config.version, 'weights and config.json are of the same export');
      assert.ok(w.every((v) => v === w[0]));
      return `version ${config.version}`;
    } finally {
      f.close();
    }
  });
});
