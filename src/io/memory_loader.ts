// A FileLoader over files held in memory (path → bytes): what a browser page loads a fetched model folder from.
// Folders are implied by the paths ('a/b/c.json' makes 'a' and 'a/b' folders).
import { joinPath } from './loader.js';
import type { FileLoader, RandomAccessFile } from './loader.js';

function notFound(path: string): Error {
  return Object.assign(new Error(`${path}: file not found`), { code: 'ENOENT' });
}

export class MemoryLoader implements FileLoader {
  readonly #files = new Map<string, Uint8Array>();
  readonly #dirs = new Set<string>();

  constructor(files: Iterable<[string, Uint8Array]> = []) {
    for (const [path, bytes] of files) this.set(path, bytes);
  }

  set(path: string, bytes: Uint8Array): void {
    const p = joinPath(path);
    this.#files.set(p, bytes);
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) this.#dirs.add(parts.slice(0, i).join('/'));
    this.#dirs.add('.');
  }

  kind(path: string): 'file' | 'dir' | null {
    const p = joinPath(path);
    return this.#files.has(p) ? 'file' : this.#dirs.has(p) ? 'dir' : null;
  }

  list(dir: string): { name: string; isDir: boolean }[] {
    const d = joinPath(dir);
    if (!this.#dirs.has(d)) throw notFound(d);
    const prefix = d === '.' ? '' : `${d}/`;
    const names = new Map<string, boolean>();
    for (const p of [...this.#files.keys(), ...this.#dirs]) {
      if (!p.startsWith(prefix) || p === d) continue;
      const rest = p.slice(prefix.length);
      const name = rest.split('/')[0]!;
      names.set(name, (names.get(name) ?? false) || rest.includes('/') || this.#dirs.has(prefix + name));
    }
    return [...names]
      .map(([name, isDir]) => ({ name, isDir }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  readText(path: string): string {
    return new TextDecoder().decode(this.#bytes(path));
  }

  open(path: string): RandomAccessFile {
    const bytes = this.#bytes(path);
    return {
      size: bytes.byteLength,
      read: (position, length) => bytes.subarray(position, Math.min(position + length, bytes.byteLength)),
      close: () => {},
    };
  }

  #bytes(path: string): Uint8Array {
    const bytes = this.#files.get(joinPath(path));
    if (bytes === undefined) throw notFound(path);
    return bytes;
  }
}
