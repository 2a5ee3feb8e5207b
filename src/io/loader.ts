// File access for model loading, behind one small interface so that models/ and pipelines/ never touch Node's
// fs: Node reads the disk (node_loader.ts), a browser page fetches a model folder over HTTP into memory first
// (fetch_loader.ts). Reads are synchronous because the loaders that parse configs and weights are; the fetch
// implementation does its asynchronous work (download, cache) before it hands out a loader.
import { defaultLoader } from './default_loader.js';

/** Positioned reads of one open file (safetensors reads each tensor at its own offset). */
export interface RandomAccessFile {
  readonly size: number;
  /** Up to `length` bytes at `position` (fewer only at the end of the file). */
  read(position: number, length: number): Uint8Array;
  close(): void;
}

export interface FileLoader {
  /** 'file', 'dir' or null (absent). */
  kind(path: string): 'file' | 'dir' | null;
  /** Entries of a folder (sorted by name). */
  list(dir: string): { name: string; isDir: boolean }[];
  readText(path: string): string;
  open(path: string): RandomAccessFile;
}

/** The platform's loader when a caller passes none: the file system in Node; see default_loader.web.ts. */
export function resolveLoader(loader?: FileLoader): FileLoader {
  return loader ?? defaultLoader;
}

/** POSIX-style join of path segments (what node:path's join does for '/'-separated paths). */
export function joinPath(...parts: string[]): string {
  const joined = parts.filter((p) => p.length > 0).join('/');
  if (joined.length === 0) return '.';
  const absolute = joined.startsWith('/');
  const out: string[] = [];
  for (const seg of joined.split(/\/+/)) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..' && out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else if (seg !== '..' || !absolute) out.push(seg);
  }
  const body = out.join('/');
  return absolute ? `/${body}` : body || '.';
}
