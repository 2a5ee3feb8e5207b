// Keeps the page itself usable offline: the page, its scripts and onnxruntime-web's files are cached when the
// service worker installs and served network-first (cache when the network fails). The model folder is cached
// apart, by the generation worker's loader (src/io/fetch_loader.ts), which also shows its download progress.
const APP_CACHE = 'kinema-app-v1';
const APP_SHELL = [
  './',
  './main.js',
  './worker.js',
  './ort/ort.min.mjs',
  './ort/ort-wasm-simd-threaded.jsep.mjs',
  './ort/ort-wasm-simd-threaded.jsep.wasm',
];

interface FetchEventLike extends Event {
  request: Request;
  respondWith(r: Promise<Response>): void;
}
interface ExtendableEventLike extends Event {
  waitUntil(p: Promise<unknown>): void;
}
const sw = self as unknown as {
  location: Location;
  skipWaiting(): Promise<void>;
  clients: { claim(): Promise<void> };
  addEventListener(type: 'install' | 'activate', f: (e: ExtendableEventLike) => void): void;
  addEventListener(type: 'fetch', f: (e: FetchEventLike) => void): void;
};

sw.addEventListener('install', (e) => {
  e.waitUntil(
    caches
      .open(APP_CACHE)
      .then((c) => c.addAll(APP_SHELL))
      .then(() => sw.skipWaiting()),
  );
});
sw.addEventListener('activate', (e) => e.waitUntil(sw.clients.claim()));

async function networkFirst(request: Request): Promise<Response> {
  const cache = await caches.open(APP_CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (err) {
    const hit = await cache.match(request, { ignoreSearch: true });
    if (hit) return hit;
    throw err;
  }
}

sw.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== 'GET' || url.origin !== sw.location.origin) return;
  if (url.pathname.includes('/models/')) return; // the generation worker's loader caches the model itself
  e.respondWith(networkFirst(e.request));
});
