// `npm run build:web`: bundles the browser page (web/browser/) with esbuild into web/dist/ — the page script, the Web
// Worker that runs generation, the service worker that keeps the page usable offline — and copies beside it
// onnxruntime-web's runtime files, the default model folder and a manifest of that folder (sizes, for the
// download bar). Files named `x.web.ts` replace their sibling `x.ts` in the bundle (the platform seam: ONNX
// Runtime package, default file loader); anything else that reaches for a Node built-in fails the build.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'web', 'dist');
/** onnxruntime-web's WebGPU+WASM build (JSEP): its loader, its Emscripten glue and its .wasm, served as is. */
const ORT_FILES = ['ort.min.mjs', 'ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm'];
const NODE_BUILTINS = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

/** `x.ts` → `x.web.ts` when that file exists; onnxruntime-web → the served copy; Node built-ins → an error. */
const browserPlatform: esbuild.Plugin = {
  name: 'kinema-browser-platform',
  setup(build) {
    build.onResolve({ filter: /^onnxruntime-web$/ }, () => ({ path: './ort/ort.min.mjs', external: true }));
    build.onResolve({ filter: /.*/ }, (args) => {
      if (NODE_BUILTINS.has(args.path))
        return {
          errors: [
            {
              text: `${args.path} is a Node built-in; the browser bundle must not import it (${args.importer})`,
            },
          ],
        };
      if (!args.path.startsWith('.') || !args.importer) return undefined;
      const target = resolve(args.resolveDir, args.path.replace(/\.js$/, '.ts'));
      const web = target.replace(/\.ts$/, '.web.ts');
      try {
        if (statSync(web).isFile()) return { path: web };
      } catch {
        // no platform variant: the shared file
      }
      return undefined;
    });
  },
};

type FileEntry = { path: string; size: number; sha256: string };

/** Folders of models/default the page never loads (text-to-video, one window): the StreamingT2V and I2V adapters. */
const NOT_FOR_THE_PAGE = new Set(['streaming', 'image_encoder', 'image_adapter']);

function copyTree(from: string, to: string, files: FileEntry[], base: string): void {
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from).sort()) {
    if (to === base && NOT_FOR_THE_PAGE.has(name)) continue;
    const src = join(from, name);
    const dst = join(to, name);
    if (statSync(src).isDirectory()) copyTree(src, dst, files, base);
    else {
      copyFileSync(src, dst);
      const bytes = readFileSync(src);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      files.push({ path: relative(base, dst).split('\\').join('/'), size: bytes.length, sha256 });
    }
  }
}

export interface WebBuild {
  outDir: string;
  /** Bytes of each emitted bundle (JS we build; onnxruntime-web's files are listed apart). */
  bundles: Record<string, number>;
  ortBytes: number;
  modelBytes: number;
  metafile: esbuild.Metafile;
}

export async function buildWeb(opts: { minify?: boolean } = {}): Promise<WebBuild> {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(join(OUT, 'ort'), { recursive: true });
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: {
      main: 'web/browser/src/main.ts',
      worker: 'web/browser/src/worker.ts',
      sw: 'web/browser/src/service_worker.ts',
    },
    outdir: OUT,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: opts.minify ?? true,
    sourcemap: true,
    metafile: true,
    logLevel: 'warning',
    plugins: [browserPlatform],
  });
  copyFileSync(join(ROOT, 'web', 'browser', 'index.html'), join(OUT, 'index.html'));
  let ortBytes = 0;
  for (const f of ORT_FILES) {
    copyFileSync(join(ROOT, 'node_modules', 'onnxruntime-web', 'dist', f), join(OUT, 'ort', f));
    ortBytes += statSync(join(OUT, 'ort', f)).size;
  }
  const modelDir = join(OUT, 'models', 'default');
  const files: FileEntry[] = [];
  copyTree(join(ROOT, 'models', 'default'), modelDir, files, modelDir);
  const model = files.filter((f) => !f.path.endsWith('.md'));
  writeFileSync(join(modelDir, 'files.json'), JSON.stringify({ files: model }, null, 1));
  const bundles: Record<string, number> = {};
  for (const [path, out] of Object.entries(result.metafile.outputs))
    if (path.endsWith('.js')) bundles[relative(OUT, resolve(ROOT, path))] = out.bytes;
  const modelBytes = model.reduce((s, f) => s + f.size, 0);
  return { outDir: OUT, bundles, ortBytes, modelBytes, metafile: result.metafile };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const b = await buildWeb();
  const kb = (n: number): string => `${(n / 1024).toFixed(0)} KiB`;
  for (const [name, bytes] of Object.entries(b.bundles)) console.log(`web/dist/${name}: ${kb(bytes)}`);
  console.log(`web/dist/ort/: ${kb(b.ortBytes)} (onnxruntime-web ${ORT_FILES.length} files)`);
  console.log(`web/dist/models/default/: ${kb(b.modelBytes)} (downloaded by the page)`);
}
