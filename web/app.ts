// The Kinema web UI: a prompt form, live progress and previews from each job's SSE stream, and a gallery of
// finished videos. Plain DOM, no framework; the server transpiles this file with esbuild when it starts.
// With a token, open the page as /?access_token=T: the token goes on every request (header where fetch can
// send one, the query where EventSource and <video src> cannot).

interface Job {
  id: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  progress: { step: number; total: number };
  error?: { code: string; message: string };
  params: { prompt: string; format: string; frames: number; width: number; height: number };
  content?: string;
}

const token = new URLSearchParams(location.search).get('access_token');
const $ = <T extends HTMLElement>(sel: string): T => document.querySelector(sel) as T;
const streams = new Map<string, EventSource>();

function withToken(url: string): string {
  return token ? `${url}${url.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(token)}` : url;
}

async function api(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  return fetch(path, { ...init, headers });
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> & { dataset?: Record<string, string> } = {},
  children: (Node | string)[] = [],
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  const { dataset, ...rest } = props;
  Object.assign(node, rest);
  if (dataset) Object.assign(node.dataset, dataset);
  node.append(...children);
  return node;
}

function refreshEmpty(section: HTMLElement): void {
  const empty = section.querySelector<HTMLElement>('.empty');
  if (empty) empty.hidden = section.querySelectorAll('.card').length > 0;
}

function activeCard(job: Job): HTMLElement {
  const existing = document.querySelector<HTMLElement>(`#active [data-id="${job.id}"]`);
  if (existing) return existing;
  const card = el('div', { className: 'card', dataset: { id: job.id, testid: 'active-job' } }, [
    el('div', { className: 'prompt', textContent: job.params.prompt }),
    el('img', { className: 'preview', alt: 'preview', hidden: true }),
    el('progress', { max: job.progress.total || 1, value: job.progress.step }),
    el('div', { className: 'status', textContent: job.status }),
    el('div', { className: 'actions' }, [
      el('button', { className: 'cancel', textContent: 'Cancel', onclick: () => void cancel(job.id) }),
    ]),
  ]);
  $('#active').prepend(card);
  refreshEmpty($('#active'));
  return card;
}

function galleryCard(job: Job): void {
  document.querySelector(`#active [data-id="${job.id}"]`)?.remove();
  refreshEmpty($('#active'));
  if (document.querySelector(`#gallery [data-id="${job.id}"]`)) return;
  const media =
    job.status !== 'succeeded'
      ? el('div', {
          className: 'status',
          textContent: job.error ? `${job.status}: ${job.error.message}` : job.status,
        })
      : job.params.format === 'mp4' || job.params.format === 'webm'
        ? el('video', {
            src: withToken(job.content!),
            controls: true,
            loop: true,
            muted: true,
            autoplay: true,
          })
        : el('img', { src: withToken(job.content!), alt: job.params.prompt });
  const actions = el('div', { className: 'actions' }, [
    el('button', { className: 'delete', textContent: 'Delete', onclick: () => void remove(job.id) }),
  ]);
  if (job.content)
    actions.prepend(
      el('a', {
        href: withToken(job.content),
        download: `${job.id}.${job.params.format}`,
        textContent: 'Download',
      }),
    );
  const card = el(
    'div',
    { className: 'card', dataset: { id: job.id, testid: 'gallery-item', status: job.status } },
    [el('div', { className: 'prompt', textContent: job.params.prompt }), media, actions],
  );
  $('#gallery').prepend(card);
  refreshEmpty($('#gallery'));
}

function follow(job: Job): void {
  if (streams.has(job.id)) return;
  const card = activeCard(job);
  const bar = card.querySelector('progress')!;
  const status = card.querySelector<HTMLElement>('.status')!;
  const preview = card.querySelector<HTMLImageElement>('.preview')!;
  const source = new EventSource(withToken(`/v1/videos/${job.id}/events`));
  streams.set(job.id, source);
  const on = (type: string, fn: (d: Record<string, unknown>) => void): void =>
    source.addEventListener(type, (e) =>
      fn(JSON.parse((e as MessageEvent<string>).data) as Record<string, unknown>),
    );
  on('position', (d) => (status.textContent = `queued, ${String(d['position'])} ahead`));
  on('started', () => (status.textContent = 'running'));
  on('requeued', () => (status.textContent = 'requeued'));
  on('step', (d) => {
    bar.max = Number(d['total']);
    bar.value = Number(d['step']);
    status.textContent = `step ${String(d['step'])}/${String(d['total'])}`;
  });
  on('preview', (d) => {
    preview.src = String(d['image']);
    preview.hidden = false;
  });
  const finish = (): void => {
    source.close();
    streams.delete(job.id);
    void api(`/v1/videos/${job.id}`).then(async (r) => r.ok && galleryCard((await r.json()) as Job));
  };
  for (const t of ['done', 'failed', 'cancelled']) source.addEventListener(t, finish);
  source.addEventListener('deleted', () => {
    source.close();
    streams.delete(job.id);
    card.remove();
  });
}

async function cancel(id: string): Promise<void> {
  await api(`/v1/videos/${id}`, { method: 'DELETE' });
}

async function remove(id: string): Promise<void> {
  const r = await api(`/v1/videos/${id}`, { method: 'DELETE' });
  if (r.status === 204) document.querySelector(`#gallery [data-id="${id}"]`)?.remove();
  refreshEmpty($('#gallery'));
}

async function submit(ev: SubmitEvent): Promise<void> {
  ev.preventDefault();
  const form = ev.target as HTMLFormElement;
  const data = new FormData(form);
  const body: Record<string, unknown> = {};
  for (const [k, v] of data) {
    const s = String(v).trim();
    if (s === '') continue;
    body[k] = ['frames', 'width', 'height', 'steps', 'seed', 'guidance'].includes(k) ? Number(s) : s;
  }
  const r = await api('/v1/videos', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await r.json()) as { id?: string; error?: { message: string } };
  $('#form-error').textContent = r.ok ? '' : (json.error?.message ?? r.statusText);
  if (r.ok && json.id) {
    const job = (await (await api(`/v1/videos/${json.id}`)).json()) as Job;
    follow(job);
  }
}

async function init(): Promise<void> {
  ($('#prompt') as HTMLTextAreaElement).value = 'a red circle moves left on a blue background';
  $<HTMLFormElement>('#submit-form').addEventListener('submit', (e) => void submit(e));
  const models = (await (await api('/v1/models')).json()) as { data: { id: string }[] };
  $('#model').append(...models.data.map((m) => el('option', { value: m.id, textContent: m.id })));
  const list = (await (await api('/v1/videos?limit=50')).json()) as { items: Job[] };
  for (const job of [...list.items].reverse()) {
    if (job.status === 'queued' || job.status === 'running') follow(job);
    else galleryCard(job);
  }
  await showHealth();
  setInterval(() => void showHealth(), 3000);
}

async function showHealth(): Promise<void> {
  const health = (await (await api('/healthz')).json()) as { queue: string; queued: number; running: number };
  $('#health').textContent = `${health.queue} queue · ${health.queued} queued · ${health.running} running`;
}

void init();
