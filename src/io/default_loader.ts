// Node's default FileLoader. The browser bundle (scripts/build_web.ts) replaces this file by default_loader.web.ts.
import type { FileLoader } from './loader.js';
import { nodeLoader } from './node_loader.js';

export const defaultLoader: FileLoader = nodeLoader;
