// The page: reads the form (or the URL: prompt, seed, steps, frames, backend, model, autorun=1), checks it,
// hands the run to the generation worker and shows what comes back — download bar with bytes and ETA, a bar
// per denoising step with latent previews, the backend and ms per step, the video with a download link (PNG
// frames where the browser has no video encoder). When a run ends it sets window.kinemaResult (the test
// contract) or, on failure, window.kinemaError, and shows the message in the page.
import { DEFAULTS, LIMITS, checkSettings } from './protocol.js';
import type { BackendChoice, FromWorker, RunResult, RunSettings } from './protocol.js';

interface KinemaWindow {
  kinemaResult?: { frames: Uint8Array[]; width: number; height: number; backend: string; msPerStep: number };
  kinemaError?: { code: string; message: string };
  kinemaState?: 'idle' | 'running' | 'done' | 'error';
  /** The last download report: how many of the model's bytes came from the cache (all of them offline). */
  kinemaDownload?: { totalBytes: number; cachedBytes: number };
}
const page = window as unknown as KinemaWindow;
page.kinemaState = 'idle';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const form = $<HTMLFormElement>('form');
const promptInput = $<HTMLTextAreaElement>('prompt');
const seedInput = $<HTMLInputElement>('seed');
const stepsInput = $<HTMLInputElement>('steps');
const framesInput = $<HTMLInputElement>('frames');
const backendInput = $<HTMLSelectElement>('backend');
const runButton = $<HTMLButtonElement>('run');
const errorBox = $<HTMLDivElement>('error');

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

function showError(code: string, message: string): void {
  errorBox.textContent = message;
  errorBox.hidden = false;
  $('status').textContent = 'Stopped.';
  runButton.disabled = false;
  page.kinemaError = { code, message };
  page.kinemaState = 'error';
}

function settingsFromForm(): RunSettings {
  const num = (el: HTMLInputElement): number => (el.value.trim() === '' ? NaN : Number(el.value));
  const model = new URLSearchParams(location.search).get('model') ?? './models/default/';
  return {
    prompt: promptInput.value,
    seed: num(seedInput),
    steps: num(stepsInput),
    frames: num(framesInput),
    backend: backendInput.value as BackendChoice,
    modelUrl: new URL(model, location.href).href,
  };
}

function applyUrlParams(params: URLSearchParams): void {
  const set = (el: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement, key: string): void => {
    const v = params.get(key);
    if (v !== null) el.value = v;
  };
  set(promptInput, 'prompt');
  set(seedInput, 'seed');
  set(stepsInput, 'steps');
  set(framesInput, 'frames');
  const backend = params.get('backend');
  if (backend !== null) {
    if (![...backendInput.options].some((o) => o.value === backend))
      backendInput.add(new Option(backend, backend));
    backendInput.value = backend;
  }
}

function drawPreview(p: { width: number; height: number; rgba: Uint8ClampedArray }): void {
  const canvas = $<HTMLCanvasElement>('preview');
  canvas.width = p.width;
  canvas.height = p.height;
  canvas
    .getContext('2d')!
    .putImageData(new ImageData(new Uint8ClampedArray(p.rgba), p.width, p.height), 0, 0);
}

function showResult(r: RunResult): void {
  const video = $<HTMLVideoElement>('result');
  const link = $<HTMLAnchorElement>('download-link');
  const pngs = $<HTMLDivElement>('pngs');
  pngs.replaceChildren();
  if (r.video) {
    const url = URL.createObjectURL(r.video.blob);
    video.src = url;
    video.hidden = false;
    void video.play().catch(() => {});
    link.href = url;
    link.download = `kinema.${r.video.mimeType.includes('mp4') ? 'mp4' : 'webm'}`;
    link.textContent = `Download the video (${r.video.codec}, ${(r.video.blob.size / 1024).toFixed(1)} KiB)`;
    link.hidden = false;
  } else {
    video.hidden = true;
    link.hidden = true;
    const note = document.createElement('p');
    note.textContent = 'This browser has no video encoder (WebCodecs); here are the frames as PNG files.';
    pngs.append(note);
    r.pngs.forEach((blob, i) => {
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = `frame_${String(i).padStart(3, '0')}.png`;
      const img = document.createElement('img');
      img.src = a.href;
      img.alt = `frame ${i + 1}`;
      a.append(img);
      pngs.append(a);
    });
  }
  $('ms-per-step').textContent = r.msPerStep.toFixed(0);
  $('total').textContent = `${(r.totalMs / 1000).toFixed(1)} s`;
  $('status').textContent = `Done: ${r.frames.length} frames of ${r.width}×${r.height}.`;
  runButton.disabled = false;
  page.kinemaResult = {
    frames: r.frames,
    width: r.width,
    height: r.height,
    backend: r.backend,
    msPerStep: r.msPerStep,
  };
  page.kinemaState = 'done';
}

let worker: Worker | null = null;

function start(): void {
  errorBox.hidden = true;
  delete page.kinemaResult;
  delete page.kinemaError;
  const settings = settingsFromForm();
  const bad = checkSettings(settings);
  if (bad) return showError(bad.code, bad.message);
  page.kinemaState = 'running';
  runButton.disabled = true;
  worker?.terminate();
  worker = new Worker(new URL('./worker.js', location.href), { type: 'module' });
  const downloadBar = $<HTMLProgressElement>('download-bar');
  const stepBar = $<HTMLProgressElement>('step-bar');
  stepBar.value = 0;
  worker.onerror = (e) =>
    showError('WORKER_FAILED', `The generation worker failed to start: ${e.message || 'script error'}.`);
  worker.onmessage = (e: MessageEvent<FromWorker>) => {
    const m = e.data;
    if (m.type === 'download') {
      const p = m.progress;
      page.kinemaDownload = { totalBytes: p.totalBytes, cachedBytes: p.cachedBytes };
      downloadBar.max = p.totalBytes || 1;
      downloadBar.value = p.loadedBytes;
      const eta =
        p.loadedBytes >= p.totalBytes
          ? 'done'
          : Number.isFinite(p.etaSeconds)
            ? `ETA ${p.etaSeconds.toFixed(1)} s`
            : 'ETA …';
      const cached = p.cachedBytes > 0 ? `, ${mib(p.cachedBytes)} from the cache` : '';
      $('download-text').textContent = `${mib(p.loadedBytes)} of ${mib(p.totalBytes)}${cached} · ${eta}`;
    } else if (m.type === 'status') $('status').textContent = m.text;
    else if (m.type === 'backend') $('backend-used').textContent = m.detail;
    else if (m.type === 'step') {
      stepBar.max = m.total;
      stepBar.value = m.index + 1;
      $('step-text').textContent = `step ${m.index + 1} of ${m.total} · ${m.ms.toFixed(0)} ms`;
      drawPreview(m.preview);
    } else if (m.type === 'done') showResult(m.result);
    else if (m.type === 'error') showError(m.code, m.message);
  };
  worker.postMessage({ type: 'run', settings });
}

seedInput.value = String(DEFAULTS.seed);
stepsInput.value = String(DEFAULTS.steps);
framesInput.value = String(DEFAULTS.frames);
framesInput.min = String(LIMITS.frames[0]);
framesInput.max = String(LIMITS.frames[1]);
stepsInput.max = String(LIMITS.steps[1]);
const params = new URLSearchParams(location.search);
applyUrlParams(params);
form.addEventListener('submit', (e) => {
  e.preventDefault();
  start();
});
if ('serviceWorker' in navigator) void navigator.serviceWorker.register('./sw.js').catch(() => {});
if (params.get('autorun') === '1') start();
