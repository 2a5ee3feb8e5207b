// .safetensors on Node: the format (header parsing, the lazy reader, serialization; safetensors_format.ts, shared
// with the browser bundle) plus writers that stream to a temp file and rename it into place.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { SafetensorsFile, checkLazyRead, planLazyWrite, planWrite } from './safetensors_format.js';
import type { HostArray, LazyTensorToWrite, SafetensorsDType, TensorSource } from './safetensors_format.js';

export * from './safetensors_format.js';

/** Largest single writeSync request (Node rejects lengths ≥ 2 GiB). */
const MAX_IO_CHUNK = 1 << 30;

/**
 * Writes a .safetensors file atomically holding one tensor in memory at a time (for converting files larger
 * than the heap); tensors are sorted by name as in writeSafetensors.
 */
export function writeSafetensorsLazy(
  path: string,
  tensors: readonly LazyTensorToWrite[],
  metadata?: Record<string, string>,
): void {
  const { sorted, header } = planLazyWrite(path, tensors, metadata);
  atomicWrite(path, (fd) => {
    writeAll(fd, header);
    for (const t of sorted) writeAll(fd, checkLazyRead(path, t, t.read()));
  });
}

/** Writes a .safetensors file atomically (temp file in the same folder, fsync, rename), streaming tensor data. */
export function writeSafetensors(
  path: string,
  tensors: TensorSource,
  metadata?: Record<string, string>,
): void {
  const plan = planWrite(path, tensors, metadata);
  atomicWrite(path, (fd) => {
    writeAll(fd, plan.header);
    for (const t of plan.tensors) writeAll(fd, t.bytes);
  });
}

/** Reads every tensor of a file into memory in its native dtype. */
export function loadSafetensors(
  path: string,
): Map<string, { dtype: SafetensorsDType; shape: number[]; data: HostArray }> {
  const file = SafetensorsFile.open(path);
  try {
    const out = new Map<string, { dtype: SafetensorsDType; shape: number[]; data: HostArray }>();
    for (const name of file.names()) {
      const { dtype, shape } = file.info(name);
      out.set(name, { dtype, shape, data: file.read(name) });
    }
    return out;
  } finally {
    file.close();
  }
}

/** Writes every byte of `data` to `fd` at the current position, looping over partial writes. */
export function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.byteLength) {
    done += writeSync(fd, data, done, Math.min(data.byteLength - done, MAX_IO_CHUNK));
  }
}

/**
 * Creates `path` atomically: `write` fills a temp file in the same folder, which is fsynced and renamed over
 * `path` (then the folder is fsynced). On any failure the temp file is removed and `path` is left untouched.
 */
export function atomicWrite(path: string, write: (fd: number) => void): void {
  const temp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const fd = openSync(temp, 'wx');
  let open = true;
  try {
    write(fd);
    fsyncSync(fd);
    open = false;
    closeSync(fd);
    renameSync(temp, path);
  } catch (e) {
    if (open) closeSync(fd);
    rmSync(temp, { force: true });
    throw e;
  }
  syncDirectory(dirname(path));
}

/** Atomically replaces `path` with `data` (UTF-8 for strings). */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  atomicWrite(path, (fd) => writeAll(fd, bytes));
}

/** Makes a rename durable on POSIX; platforms that cannot open a folder (Windows) skip it. */
function syncDirectory(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch (e) {
    // Some filesystems do not support fsync on a folder; the rename itself has already happened.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'EBADF') throw e;
  } finally {
    closeSync(fd);
  }
}
