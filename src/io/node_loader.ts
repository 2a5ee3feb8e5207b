// The FileLoader of Node: the local file system.
import { closeSync, fstatSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import type { FileLoader, RandomAccessFile } from './loader.js';
import { KinemaError } from '../errors.js';

/** Largest single readSync request (Node rejects lengths ≥ 2 GiB). */
const MAX_IO_CHUNK = 1 << 30;

/** Node's error for a missing file keeps its ENOENT code, so callers can tell "absent" from "unreadable". */
function openFile(path: string): RandomAccessFile {
  let fd: number | undefined = openSync(path, 'r');
  const size = fstatSync(fd).size;
  return {
    size,
    read(position, length) {
      if (fd === undefined) throw new KinemaError('IO_READ_AFTER_CLOSE', `${path}: read after close()`);
      const n = Math.max(0, Math.min(length, size - position));
      const out = new Uint8Array(n);
      let done = 0;
      while (done < n) {
        const got = readSync(fd, out, done, Math.min(n - done, MAX_IO_CHUNK), position + done);
        if (got === 0) return out.subarray(0, done); // the file shrank under us: a short read
        done += got;
      }
      return out;
    },
    close() {
      if (fd === undefined) return;
      const f = fd;
      fd = undefined;
      closeSync(f);
    },
  };
}

export const nodeLoader: FileLoader = {
  kind(path) {
    try {
      const s = statSync(path);
      return s.isDirectory() ? 'dir' : 'file';
    } catch {
      return null;
    }
  },
  list(dir) {
    return readdirSync(dir, { withFileTypes: true })
      .map((e) => ({ name: e.name, isDir: e.isDirectory() }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  },
  readText: (path) => readFileSync(path, 'utf8'),
  open: openFile,
};
