// The web UI's files (web/): index.html and style.css as they are, app.ts built to JavaScript by esbuild once,
// when the server starts (the repo's build step for the browser; tsc type-checks the same file with DOM types
// through web/tsconfig.json).
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transform } from 'esbuild';

export const WEB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../web');

export interface WebAsset {
  body: string;
  type: string;
}

export async function buildWebAssets(dir: string = WEB_DIR): Promise<Map<string, WebAsset>> {
  const source = readFileSync(join(dir, 'app.ts'), 'utf8');
  const js = await transform(source, { loader: 'ts', format: 'esm', target: 'es2022', sourcefile: 'app.ts' });
  return new Map([
    ['/', { body: readFileSync(join(dir, 'index.html'), 'utf8'), type: 'text/html; charset=utf-8' }],
    ['/style.css', { body: readFileSync(join(dir, 'style.css'), 'utf8'), type: 'text/css; charset=utf-8' }],
    ['/app.js', { body: js.code, type: 'text/javascript; charset=utf-8' }],
  ]);
}
