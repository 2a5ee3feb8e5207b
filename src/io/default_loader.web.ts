// The browser's default FileLoader (swapped in for default_loader.ts by scripts/build_web.ts): there is no file
// system, so loading without an explicit loader is a named error; fetch a folder with fetchModelFolder first.
import { KinemaError } from '../errors.js';
import type { FileLoader } from './loader.js';

function noFileSystem(path: string): never {
  throw new KinemaError(
    'NO_FILE_LOADER',
    `cannot read ${path}: a browser has no file system; pass the loader of fetchModelFolder (src/io/fetch_loader.ts)`,
  );
}

export const defaultLoader: FileLoader = {
  kind: noFileSystem,
  list: noFileSystem,
  readText: noFileSystem,
  open: noFileSystem,
};
