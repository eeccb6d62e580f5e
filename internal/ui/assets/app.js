// nimbus web UI: one script, no dependencies, no build step. Everything
// shown from the API, a function's output or its logs is put in the page as
// text (textContent, never HTML). The admin token lives in this tab's
// session storage and goes out only as a bearer header to /v1, never to a
// function.
'use strict';
(() => {
  const TOKEN = 'nimbus.token';
  const main = document.getElementById('main');
  const nav = document.getElementById('nav');
  let leave = []; // what to stop when the page changes: timers, streams
  let generation = 0; // bumped at each page change: work of an older page stops

  // ---- small helpers ----

  // el builds an element; string children become text nodes.
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'class') e.className = v;
      else if (k === 'value') e.value = v;
      else if (k === 'style') Object.assign(e.style, v); // CSSOM: the CSP allows no style attribute
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const k of kids.flat(Infinity)) {
      if (k === undefined || k === null || k === false) continue;
      e.append(k instanceof Node ? k : String(k));
    }
    return e;
  }
  const svgNS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs) {
    const e = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }
  let ids = 0;
  const uid = (p) => `${p}-${++ids}`;

  // field: a labelled input; its error shows next to it (data-field names
  // the API's field it stands for).
  function field(label, input, hint, apiField) {
    input.id = input.id || uid('f');
    const err = el('p', { class: 'field-error', id: input.id + '-err', role: 'alert', hidden: true });
    input.setAttribute('aria-describedby', err.id);
    const box = el('div', { 'data-field': apiField || '' },
      el('label', { for: input.id }, label), input, hint ? el('p', { class: 'hint' }, hint) : null, err);
    return box;
  }
  function showFieldError(form, fieldName, message) {
    const boxes = [...form.querySelectorAll('[data-field]')].filter((b) => b.dataset.field && !b.closest('[hidden]'));
    // The field itself, or the nearest one it belongs to (env.FOO → env).
    let box = boxes.find((b) => b.dataset.field === fieldName);
    if (!box) box = boxes.find((b) => fieldName && fieldName.startsWith(b.dataset.field + '.'));
    if (!box) box = boxes.find((b) => fieldName && b.dataset.field.startsWith(fieldName + '.'));
    if (!box) return false;
    const err = box.querySelector('.field-error');
    err.textContent = message;
    err.hidden = false;
    const input = box.querySelector('input, select, textarea');
    if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
    return true;
  }
  function clearErrors(form) {
    for (const e of form.querySelectorAll('.field-error, .form-error')) { e.textContent = ''; e.hidden = true; }
    for (const i of form.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
  }
  // formError shows an API error next to its field, or above the form.
  function formError(form, err) {
    if (err.field && showFieldError(form, err.field, err.message)) return;
    const box = form.querySelector('.form-error');
    box.textContent = err.message;
    box.hidden = false;
  }
  const formErrorBox = () => el('p', { class: 'error form-error', role: 'alert', hidden: true });

  const fmtMs = (s) => (s ? (s * 1000 < 10 ? (s * 1000).toFixed(1) : Math.round(s * 1000)) + ' ms' : '–');
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many || one + 's'}`;
  const fmtTime = (t) => (t ? new Date(t).toLocaleString() : '–');
  const q = (o) => new URLSearchParams(Object.entries(o).filter(([, v]) => v !== undefined && v !== '')).toString();
  const fnPath = (ns, name, rest) => `/v1/functions/${encodeURIComponent(name)}${rest || ''}?${q({ namespace: ns })}`;

  function every(ms, f) {
    const mine = generation;
    let stopped = false;
    let timer;
    const tick = async () => {
      if (mine !== generation) return; // registered after its page was left
      try { await f(); } catch (e) { /* shown by f itself */ }
      if (!stopped && mine === generation) timer = setTimeout(tick, ms);
    };
    leave.push(() => { stopped = true; clearTimeout(timer); });
    return tick();
  }

  // ---- the API ----

  class ApiError extends Error {
    constructor(status, message, field) { super(message); this.status = status; this.field = field; }
  }
  const token = () => sessionStorage.getItem(TOKEN) || '';

  async function errorOf(resp) {
    const text = await resp.text();
    try {
      const j = JSON.parse(text);
      if (j.error && j.error.message) return new ApiError(resp.status, j.error.message, j.error.field);
      if (Array.isArray(j.errors) && j.errors.length) return new ApiError(resp.status, j.errors.map((e) => e.message).join('; '));
      if (j.message) return new ApiError(resp.status, j.message);
    } catch (e) { /* not JSON */ }
    return new ApiError(resp.status, `${resp.status} ${resp.statusText}${text ? ': ' + text.slice(0, 300) : ''}`);
  }

  async function api(method, path, opts = {}) {
    const headers = { Authorization: 'Bearer ' + token(), ...(opts.headers || {}) };
    let body = opts.body;
    if (body !== undefined && !(body instanceof Blob) && typeof body !== 'string') {
      body = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    const resp = await fetch(path, { method, headers, body, signal: opts.signal, cache: 'no-store' });
    if (resp.status === 401) {
      signOut('Your token was refused (it may have been changed): sign in again.');
      throw new ApiError(401, 'not signed in');
    }
    if (!resp.ok) throw await errorOf(resp);
    if (opts.raw) return resp;
    if (resp.status === 204) return null;
    const ct = resp.headers.get('Content-Type') || '';
    return ct.includes('json') ? resp.json() : resp.text();
  }

  function signOut(why) {
    sessionStorage.removeItem(TOKEN);
    if (why) sessionStorage.setItem('nimbus.signin-reason', why);
    if (location.hash.startsWith('#/signin')) route();
    else location.hash = '#/signin';
  }

  // ---- pages ----

  async function pageSignin() {
    nav.hidden = true;
    const input = el('input', { type: 'password', autocomplete: 'current-password', required: true, spellcheck: 'false' });
    const form = el('form', { class: 'card signin', novalidate: true },
      el('h1', {}, 'Sign in to nimbus'),
      formErrorBox(),
      field('Admin token', input, 'The token nimbus up printed when it first started; it is kept in the admin-token file of its data directory.', 'token'),
      el('p', {}, el('button', { type: 'submit' }, 'Sign in')));
    const reason = sessionStorage.getItem('nimbus.signin-reason');
    if (reason) {
      sessionStorage.removeItem('nimbus.signin-reason');
      const box = form.querySelector('.form-error');
      box.textContent = reason;
      box.hidden = false;
    }
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const t = input.value.trim();
      if (!t) { showFieldError(form, 'token', 'Enter the admin token.'); return; }
      let resp;
      try {
        resp = await fetch('/v1/info', { headers: { Authorization: 'Bearer ' + t }, cache: 'no-store' });
      } catch (e) { formError(form, { message: `nimbus did not answer: ${e.message}` }); return; }
      if (resp.status === 401) {
        showFieldError(form, 'token', 'That token was refused: copy it again from the admin-token file in nimbus\'s data directory.');
        return;
      }
      if (!resp.ok) { formError(form, await errorOf(resp)); return; }
      sessionStorage.setItem(TOKEN, t);
      location.hash = '#/functions';
    });
    main.replaceChildren(form);
    input.focus();
  }

  // renderFunctionRows fills tbody with one row per function view.
  function renderFunctionRows(tbody, list, filter) {
    const f = filter.trim().toLowerCase();
    const frag = document.createDocumentFragment();
    let shown = 0;
    for (const v of list) {
      const fn = v.function;
      if (f && !`${fn.name} ${fn.namespace} ${fn.runtime}`.toLowerCase().includes(f)) continue;
      shown++;
      const st = v.status || {};
      const rec = st.recent || {};
      const sc = v.scale || {};
      const errs = (rec.serverErrors || 0);
      const rate = rec.invocations ? ((errs / rec.invocations) * 100).toFixed(1) + '%' : '–';
      frag.append(el('tr', {},
        el('td', {}, el('a', { href: `#/fn/${encodeURIComponent(fn.namespace)}/${encodeURIComponent(fn.name)}` }, fn.name)),
        el('td', { class: 'hide-narrow' }, fn.namespace),
        el('td', { class: 'hide-narrow' }, fn.runtime),
        el('td', { class: 'num' }, `${st.readyInstances || 0} / ${sc.desired ?? '–'}`),
        el('td', { class: 'num' }, String(rec.invocations || 0)),
        el('td', { class: 'num' + (errs ? ' bad' : '') }, rate),
        el('td', { class: 'num hide-narrow' }, fmtMs(rec.p50)),
        el('td', { class: 'num hide-narrow' }, fmtMs(rec.p99)),
        el('td', { class: 'num hide-narrow' }, String(rec.coldStarts || 0)),
        el('td', { class: 'hide-narrow' }, st.lastError ? el('span', { class: 'bad', title: fmtTime(st.lastErrorAt) }, st.lastError) : '')));
    }
    tbody.replaceChildren(frag);
    return shown;
  }

  async function pageFunctions() {
    const filter = el('input', { type: 'search', placeholder: 'name, namespace or runtime' });
    const tbody = el('tbody');
    const count = el('p', { class: 'hint', 'aria-live': 'polite' });
    const err = el('p', { class: 'error', role: 'alert', hidden: true });
    main.replaceChildren(
      el('h1', {}, 'Functions'),
      el('div', { class: 'row' }, field('Filter', filter)),
      err, count,
      el('div', { class: 'scroll' }, el('table', { id: 'functions' },
        el('thead', {}, el('tr', {},
          el('th', {}, 'Name'), el('th', { class: 'hide-narrow' }, 'Namespace'), el('th', { class: 'hide-narrow' }, 'Runtime'),
          el('th', { class: 'num', title: 'ready / desired' }, 'Replicas'), el('th', { class: 'num', title: 'last 5 minutes' }, 'Calls (5m)'),
          el('th', { class: 'num' }, 'Errors'), el('th', { class: 'num hide-narrow' }, 'p50'), el('th', { class: 'num hide-narrow' }, 'p99'),
          el('th', { class: 'num hide-narrow' }, 'Cold starts'), el('th', { class: 'hide-narrow' }, 'Last error'))),
        tbody)));
    let list = [];
    const render = () => {
      const t0 = performance.now();
      const shown = renderFunctionRows(tbody, list, filter.value);
      window.nimbusRender = { rows: shown, ms: performance.now() - t0 };
      count.textContent = list.length ? `${shown} of ${list.length} functions` : 'No functions yet: deploy one.';
    };
    filter.addEventListener('input', render);
    await every(2000, async () => {
      try {
        const r = await api('GET', '/v1/functions');
        list = r.functions || [];
        list.sort((a, b) => (a.function.namespace + '/' + a.function.name).localeCompare(b.function.namespace + '/' + b.function.name));
        err.hidden = true;
        render();
      } catch (e) { err.textContent = e.message; err.hidden = false; }
    });
  }

  // chart draws lines over the points (one value per point per line).
  function chart(title, lines, opts = {}) {
    const W = 300, H = 120, P = 4;
    const n = Math.max(...lines.map((l) => l.values.length), 2);
    const top = Math.max(opts.min || 1, ...lines.flatMap((l) => l.values));
    const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title, preserveAspectRatio: 'none' });
    for (const y of [0.25, 0.5, 0.75]) s.append(svg('line', { x1: 0, x2: W, y1: H * y, y2: H * y, stroke: '#e4e8ef', 'stroke-width': 1 }));
    for (const l of lines) {
      const pts = l.values.map((v, i) => `${(i / (n - 1)) * W},${H - P - (v / top) * (H - 2 * P)}`).join(' ');
      s.append(svg('polyline', { points: pts, fill: 'none', stroke: l.color, 'stroke-width': 1.6, 'vector-effect': 'non-scaling-stroke' }));
    }
    const unit = opts.unit || '';
    return el('div', { class: 'chart' },
      el('h3', {}, title),
      s,
      el('div', { class: 'legend' },
        lines.map((l) => el('span', { style: { color: l.color } }, `${l.label} ${fmt(l.values[l.values.length - 1])}${unit}`)),
        el('span', { class: 'hint' }, `max ${fmt(top)}${unit}, last 15 min`)));
  }
  const fmt = (v) => (v === undefined ? '–' : Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 0));

  async function pageFunction(ns, name) {
    const head = el('div');
    const charts = el('div', { class: 'charts', id: 'charts' });
    const inst = el('tbody');
    const calls = el('tbody');
    const spec = el('pre', { id: 'spec' });
    const revs = el('tbody', { id: 'revisions' });
    let shownRev = 0;
    const err = el('p', { class: 'error', role: 'alert', hidden: true });
    main.replaceChildren(
      el('h1', {}, name, ' ', el('span', { class: 'pill' }, ns)),
      el('p', { class: 'row' },
        el('a', { href: `#/invoke/${encodeURIComponent(ns)}/${encodeURIComponent(name)}` }, 'Invoke'),
        el('a', { href: `#/calls?${q({ function: name, namespace: ns })}` }, 'Calls'),
        el('button', { type: 'button', class: 'danger', onclick: () => deleteFunction(ns, name) }, 'Delete')),
      err, head,
      el('h2', {}, 'Last 15 minutes'), charts,
      el('h2', {}, 'Instances'),
      el('div', { class: 'scroll' }, el('table', {}, el('thead', {}, el('tr', {},
        el('th', {}, 'Instance'), el('th', { class: 'num' }, 'Revision'), el('th', {}, 'State'),
        el('th', { class: 'num' }, 'In flight'), el('th', { class: 'num' }, 'Served'), el('th', { class: 'hide-narrow' }, 'Started'))), inst)),
      logPane(ns, name),
      el('h2', {}, 'Recent calls'),
      el('div', { class: 'scroll' }, el('table', {}, callHead(), calls)),
      el('h2', {}, 'Spec'), spec,
      el('h2', {}, 'Revisions'),
      el('div', { class: 'scroll' }, el('table', {}, el('thead', {}, el('tr', {},
        el('th', { class: 'num' }, 'Revision'), el('th', {}, 'Stored'), el('th', {}, 'Spec'))), revs)));
    await every(3000, async () => {
      try {
        const [v, s, i, c] = await Promise.all([
          api('GET', fnPath(ns, name)), api('GET', fnPath(ns, name, '/series')),
          api('GET', fnPath(ns, name, '/instances')), api('GET', `/v1/calls?${q({ function: name, namespace: ns, limit: 20 })}`).catch(() => ({ calls: [] }))]);
        err.hidden = true;
        const st = v.status || {}, sc = v.scale || {}, rec = st.recent || {}, fn = v.function;
        head.replaceChildren(el('dl', { class: 'kv card' },
          el('dt', {}, 'Runtime'), el('dd', {}, fn.runtime, fn.image ? ` · image ${fn.image}` : '', fn.package ? ` · package ${fn.package.slice(0, 19)}…` : ''),
          el('dt', {}, 'Revision'), el('dd', {}, `${v.revision}, updated ${fmtTime(v.updated)}`),
          el('dt', {}, 'Replicas'), el('dd', { id: 'replicas' }, `${st.readyInstances || 0} ready, ${sc.desired ?? '–'} desired`, sc.starting ? `, ${sc.starting} starting` : ''),
          el('dt', {}, 'Last decision'), el('dd', {}, sc.reason || '–', sc.startError ? el('div', { class: 'bad' }, 'Start error: ', sc.startError) : ''),
          el('dt', {}, 'Last 5 minutes'), el('dd', { id: 'recent' }, `${plural(rec.invocations || 0, 'call')}, ${rec.serverErrors || 0} 5xx, ${rec.clientErrors || 0} 4xx, p50 ${fmtMs(rec.p50)}, p99 ${fmtMs(rec.p99)}, ${plural(rec.coldStarts || 0, 'cold start')}`),
          el('dt', {}, 'Since start'), el('dd', { id: 'totals' }, `${plural(st.invocations || 0, 'call')}, ${st.failures || 0} failed, ${plural(st.coldStarts || 0, 'cold start')}`),
          st.lastError ? [el('dt', {}, 'Last error'), el('dd', { class: 'bad' }, st.lastError, ` (${fmtTime(st.lastErrorAt)})`)] : null));
        const pts = s.points || [];
        const per = s.step || 10;
        charts.replaceChildren(
          chart('Invocations per second', [
            { label: 'ok', color: '#1c7c3c', values: pts.map((p) => p.ok / per) },
            { label: '4xx', color: '#a36300', values: pts.map((p) => p.clientErrors / per) },
            { label: '5xx', color: '#b3261e', values: pts.map((p) => p.serverErrors / per) }], { unit: '/s' }),
          chart('Latency', [
            { label: 'p50', color: '#2457c5', values: pts.map((p) => p.p50 * 1000) },
            { label: 'p99', color: '#8a3ffc', values: pts.map((p) => p.p99 * 1000) }], { unit: ' ms' }),
          chart('Ready replicas', [{ label: 'ready', color: '#1d2430', values: pts.map((p) => p.ready) }]),
          chart('Cold starts', [{ label: 'starts', color: '#a36300', values: pts.map((p) => p.coldStarts) }]));
        inst.replaceChildren(...(i.instances || []).map((x) => el('tr', {},
          el('td', { class: 'mono' }, x.id), el('td', { class: 'num' }, String(x.revision)), el('td', {}, x.state),
          el('td', { class: 'num' }, String(x.inFlight)), el('td', { class: 'num' }, String(x.served)), el('td', { class: 'hide-narrow' }, fmtTime(x.started)))));
        if (!(i.instances || []).length) inst.replaceChildren(el('tr', {}, el('td', { colspan: 6, class: 'hint' }, 'No instance runs: the next call starts one.')));
        calls.replaceChildren(...callRows(c.calls || []));
        spec.textContent = JSON.stringify(fn, null, 2);
        if (v.revision !== shownRev) {
          shownRev = v.revision;
          const r = await api('GET', fnPath(ns, name, '/revisions'));
          revs.replaceChildren(...(r.revisions || []).map((x, i) => el('tr', {},
            el('td', { class: 'num' }, String(x.revision), i === 0 ? ' (current)' : ''),
            el('td', {}, fmtTime(x.updated)),
            el('td', {}, el('details', {}, el('summary', {}, x.function.image || (x.function.command || []).join(' ')),
              el('pre', {}, JSON.stringify(x.function, null, 2)))))));
        }
      } catch (e) {
        err.textContent = e.status === 404 ? `Function ${ns}/${name} does not exist (any more).` : e.message;
        err.hidden = false;
      }
    });
  }

  async function deleteFunction(ns, name) {
    if (!confirm(`Delete ${ns}/${name}? Its instances stop and its spec is removed.`)) return;
    try {
      await api('DELETE', fnPath(ns, name));
      location.hash = '#/functions';
    } catch (e) { alert(e.message); }
  }

  // logPane follows a function's log lines while the page is open.
  function logPane(ns, name) {
    const pre = el('pre', { class: 'logs', id: 'logs', 'aria-live': 'off', tabindex: '0' });
    const filter = el('input', { type: 'search', placeholder: 'text in the line' });
    const pause = el('button', { type: 'button', class: 'secondary', 'aria-pressed': 'false' }, 'Pause');
    const state = el('span', { class: 'hint', role: 'status' }, 'connecting…');
    let paused = false;
    let lines = [];
    const MAX = 2000;
    const show = () => {
      const f = filter.value.toLowerCase();
      const frag = document.createDocumentFragment();
      for (const l of lines) {
        if (f && !l.text.toLowerCase().includes(f)) continue;
        const cls = l.stream === 'stderr' ? 'stderr' : l.stream === 'system' ? 'gw' : '';
        frag.append(el('div', { class: cls }, `${new Date(l.time).toLocaleTimeString()} ${l.instance ? l.instance.slice(0, 8) + ' ' : ''}${l.text}`));
      }
      pre.replaceChildren(frag);
      pre.scrollTop = pre.scrollHeight;
    };
    pause.addEventListener('click', () => {
      paused = !paused;
      pause.textContent = paused ? 'Follow' : 'Pause';
      pause.setAttribute('aria-pressed', String(paused));
      if (!paused) show();
    });
    filter.addEventListener('input', show);
    const ctrl = new AbortController();
    leave.push(() => ctrl.abort());
    (async () => {
      while (!ctrl.signal.aborted) {
        try {
          const resp = await api('GET', fnPath(ns, name, '/logs') + '&' + q({ follow: 'true', since: '15m' }), { raw: true, signal: ctrl.signal });
          state.textContent = 'following';
          const reader = resp.body.getReader();
          const dec = new TextDecoder();
          let buf = '';
          lines = [];
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += dec.decode(value, { stream: true });
            let i;
            while ((i = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, i);
              buf = buf.slice(i + 1);
              if (!line) continue;
              try { lines.push(JSON.parse(line)); } catch (e) { continue; }
            }
            if (lines.length > MAX) lines = lines.slice(-MAX);
            if (!paused) show();
          }
        } catch (e) {
          if (ctrl.signal.aborted) return;
          state.textContent = 'reconnecting: ' + e.message;
        }
        await new Promise((r) => setTimeout(r, 2000));
      }
    })();
    return el('section', {},
      el('h2', {}, 'Logs'),
      el('div', { class: 'row' }, field('Filter lines', filter), el('div', {}, pause, ' ', state)),
      pre);
  }

  function callHead() {
    return el('thead', {}, el('tr', {},
      el('th', {}, 'Call id'), el('th', {}, 'Function'), el('th', {}, 'Mode'), el('th', {}, 'State'),
      el('th', { class: 'num' }, 'Status'), el('th', { class: 'num' }, 'Took'), el('th', { class: 'num hide-narrow' }, 'Attempts'),
      el('th', { class: 'hide-narrow' }, 'Started'), el('th', { class: 'hide-narrow' }, 'Error')));
  }
  function callRows(list) {
    if (!list.length) return [el('tr', {}, el('td', { colspan: 9, class: 'hint' }, 'No calls recorded.'))];
    return list.map((c) => el('tr', {},
      el('td', { class: 'mono' }, el('a', { href: `#/calls/${encodeURIComponent(c.callId)}` }, c.callId)),
      el('td', {}, `${c.namespace}/${c.function}`), el('td', {}, c.mode), el('td', {}, c.state),
      el('td', { class: 'num' + (c.status >= 500 ? ' bad' : '') }, c.status ? String(c.status) : '–'),
      el('td', { class: 'num' }, fmtMs(c.duration)), el('td', { class: 'num hide-narrow' }, String(c.attempts || 0)),
      el('td', { class: 'hide-narrow' }, fmtTime(c.start)), el('td', { class: 'hide-narrow bad' }, c.error || '')));
  }

  async function functionOptions(select, selected) {
    const r = await api('GET', '/v1/functions');
    const list = (r.functions || []).map((v) => v.function).sort((a, b) => (a.namespace + a.name).localeCompare(b.namespace + b.name));
    select.replaceChildren(...list.map((f) => el('option', { value: `${f.namespace}/${f.name}`, selected: `${f.namespace}/${f.name}` === selected }, `${f.name} (${f.namespace})`)));
    return list;
  }

  // tarGz packs files chosen from a directory (webkitRelativePath
  // "dir/…", the directory itself left out) into a gzipped tar, as nimbus
  // deploy would. A browser does not say which files are executable, so
  // every file gets mode 0755 (a handler binary must run).
  async function tarGz(files) {
    const enc = new TextEncoder();
    const parts = [];
    const octal = (buf, off, len, v) => { buf.set(enc.encode(v.toString(8).padStart(len - 1, '0')), off); };
    for (const f of files) {
      const rel = (f.webkitRelativePath || f.name).split('/').slice(1).join('/') || f.name;
      let name = rel, prefix = '';
      if (enc.encode(name).length > 100) {
        const cut = rel.lastIndexOf('/', rel.length - 1);
        prefix = rel.slice(0, cut);
        name = rel.slice(cut + 1);
        if (cut < 0 || enc.encode(name).length > 100 || enc.encode(prefix).length > 155) {
          throw new ApiError(400, `${rel}: the path is too long for a package (at most 255 bytes, 100 after the last /)`, 'package');
        }
      }
      const h = new Uint8Array(512);
      h.set(enc.encode(name), 0);
      octal(h, 100, 8, 0o755);
      octal(h, 108, 8, 0);
      octal(h, 116, 8, 0);
      octal(h, 124, 12, f.size);
      octal(h, 136, 12, Math.floor((f.lastModified || Date.now()) / 1000));
      h.fill(32, 148, 156); // the checksum counts itself as spaces
      h[156] = 48; // '0': a regular file
      h.set(enc.encode('ustar\0'), 257);
      h.set(enc.encode('00'), 263);
      h.set(enc.encode(prefix), 345);
      let sum = 0;
      for (const b of h) sum += b;
      h.set(enc.encode(sum.toString(8).padStart(6, '0') + '\0 '), 148);
      parts.push(h, f);
      if (f.size % 512) parts.push(new Uint8Array(512 - (f.size % 512)));
    }
    parts.push(new Uint8Array(1024));
    const gz = new Blob(parts).stream().pipeThrough(new CompressionStream('gzip'));
    return new Response(gz).blob();
  }

  async function pageDeploy() {
    const mine = generation;
    const info = await api('GET', '/v1/info');
    if (mine !== generation) return; // the user went elsewhere meanwhile
    const i = {
      name: el('input', { type: 'text', required: true, autocomplete: 'off', spellcheck: 'false' }),
      namespace: el('input', { type: 'text', value: 'default', spellcheck: 'false' }),
      runtime: el('select', {}, (info.runtimes || []).map((r) => el('option', { value: r }, r))),
      protocol: el('select', { name: 'protocol' }, el('option', { value: 'http' }, 'http: it serves $PORT'), el('option', { value: 'stdio' }, 'stdio: one process per request')),
      source: el('select', { name: 'source' }, el('option', { value: 'package' }, 'a package (.tar.gz)'), el('option', { value: 'dir' }, 'a directory'),
        el('option', { value: 'image' }, 'a container image')),
      pkg: el('input', { type: 'file', accept: '.tar.gz,.tgz,application/gzip' }),
      dir: el('input', { type: 'file', webkitdirectory: true, multiple: true }),
      image: el('input', { type: 'text', placeholder: 'ghcr.io/openfaas/alpine:latest', spellcheck: 'false' }),
      command: el('input', { type: 'text', placeholder: './handler', spellcheck: 'false' }),
      env: el('textarea', { placeholder: 'KEY=value, one per line', spellcheck: 'false' }),
      secrets: el('input', { type: 'text', placeholder: 'db-password, api-key', spellcheck: 'false' }),
      min: el('input', { type: 'number', min: 0, value: 0 }),
      max: el('input', { type: 'number', min: 1, value: 4 }),
      conc: el('input', { type: 'number', min: 1, value: 100 }),
      timeout: el('input', { type: 'text', placeholder: '30s' }),
    };
    const pkgBox = field('Package', i.pkg, 'A gzipped tar of the function\'s directory (tar czf fn.tar.gz -C DIR .); nimbus deploy DIR does this for you.', 'package');
    const dirBox = field('Directory', i.dir, 'Its files are packed here, as nimbus deploy DIR would (without running a build step: build first).', 'package');
    const imgBox = field('Image', i.image, 'Runs on the docker runtime.', 'image');
    const status = el('p', { role: 'status', class: 'ok' });
    const form = el('form', { class: 'card', novalidate: true },
      formErrorBox(),
      el('div', { class: 'row' },
        field('Name', i.name, 'Lower-case letters, digits and -.', 'name'),
        field('Namespace', i.namespace, null, 'namespace'),
        field('Runtime', i.runtime, null, 'runtime'),
        field('Protocol', i.protocol, null, 'protocol')),
      field('Deploy from', i.source),
      pkgBox, dirBox, imgBox,
      field('Command', i.command, 'What runs, split on spaces (blank: the image\'s own, or ./handler of nimbus.yaml).', 'command'),
      field('Environment', i.env, null, 'env'),
      field('Secrets', i.secrets, 'Names of secrets given to it as files, separated by commas.', 'secrets'),
      el('div', { class: 'row' },
        field('Min replicas', i.min, null, 'scale.min'),
        field('Max replicas', i.max, null, 'scale.max'),
        field('Max concurrency', i.conc, 'Requests one replica takes at once.', 'scale.maxConcurrency'),
        field('Timeout', i.timeout, null, 'timeout')),
      el('p', {}, el('button', { type: 'submit' }, 'Deploy')), status);
    const sync = () => {
      const image = i.source.value === 'image';
      pkgBox.hidden = i.source.value !== 'package';
      dirBox.hidden = i.source.value !== 'dir';
      imgBox.hidden = !image;
      // An image runs on the docker runtime, a package as processes.
      const want = image ? 'docker' : 'process';
      if ([...i.runtime.options].some((o) => o.value === want)) i.runtime.value = want;
    };
    i.source.addEventListener('change', sync);
    sync();
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      status.textContent = '';
      const name = i.name.value.trim();
      if (!name) { showFieldError(form, 'name', 'Give the function a name.'); return; }
      const spec = { name, namespace: i.namespace.value.trim() || 'default', runtime: i.runtime.value, protocol: i.protocol.value };
      const env = {};
      for (const [n, line] of i.env.value.split('\n').entries()) {
        if (!line.trim()) continue;
        const eq = line.indexOf('=');
        if (eq <= 0) { showFieldError(form, 'env', `Line ${n + 1} is not KEY=value.`); return; }
        env[line.slice(0, eq).trim()] = line.slice(eq + 1);
      }
      if (Object.keys(env).length) spec.env = env;
      const cmd = i.command.value.trim();
      if (cmd) spec.command = cmd.split(/\s+/);
      const secrets = i.secrets.value.split(',').map((s) => s.trim()).filter(Boolean);
      if (secrets.length) spec.secrets = secrets;
      spec.scale = { min: Number(i.min.value), max: Number(i.max.value), maxConcurrency: Number(i.conc.value) };
      if (i.timeout.value.trim()) spec.timeout = i.timeout.value.trim();
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      try {
        if (i.source.value === 'image') {
          if (!i.image.value.trim()) { showFieldError(form, 'image', 'Name the image to run.'); return; }
          spec.image = i.image.value.trim();
        } else {
          let file = i.pkg.files[0];
          if (i.source.value === 'dir') {
            if (!i.dir.files.length) { showFieldError(form, 'package', 'Choose the directory to upload.'); return; }
            try { file = await tarGz([...i.dir.files]); } catch (e) { showFieldError(form, 'package', e.message); return; }
          } else if (!file) { showFieldError(form, 'package', 'Choose the package file to upload.'); return; }
          status.textContent = `Uploading ${file.name || 'the directory'} (${file.size} bytes)…`;
          try {
            const up = await api('POST', '/v1/packages', { body: file, headers: { 'Content-Type': 'application/gzip' } });
            spec.package = up.digest;
          } catch (e) {
            status.textContent = '';
            if (e.status !== 401) showFieldError(form, 'package', e.message);
            return;
          }
          if (!spec.command) spec.command = ['./handler'];
        }
        status.textContent = 'Deploying…';
        const v = await api('PUT', `/v1/functions/${encodeURIComponent(name)}?${q({ namespace: spec.namespace })}`, { body: spec });
        status.textContent = `Deployed ${spec.namespace}/${name}, revision ${v.revision}.`;
        location.hash = `#/fn/${encodeURIComponent(spec.namespace)}/${encodeURIComponent(name)}`;
      } catch (e) {
        status.textContent = '';
        if (e.status !== 401) formError(form, e);
      } finally {
        button.disabled = false;
      }
    });
    main.replaceChildren(el('h1', {}, 'Deploy a function'), form);
  }

  async function pageInvoke(ns, name) {
    const i = {
      fn: el('select', {}),
      method: el('select', {}, ['POST', 'GET', 'PUT', 'PATCH', 'DELETE'].map((m) => el('option', { value: m }, m))),
      mode: el('select', {}, el('option', { value: 'sync' }, 'sync: wait for the answer'), el('option', { value: 'async' }, 'async: queue it (202)')),
      path: el('input', { type: 'text', value: '/', spellcheck: 'false' }),
      query: el('input', { type: 'text', placeholder: 'a=1&b=2', spellcheck: 'false' }),
      headers: el('textarea', { placeholder: 'Content-Type: application/json', spellcheck: 'false' }),
      body: el('textarea', { spellcheck: 'false' }),
    };
    const out = el('div', { id: 'result', 'aria-live': 'polite' });
    const form = el('form', { class: 'card', novalidate: true },
      formErrorBox(),
      el('div', { class: 'row' }, field('Function', i.fn, null, 'function'), field('Method', i.method), field('Mode', i.mode)),
      el('div', { class: 'row' }, field('Path', i.path, 'Below the function: /function/NAME/…', 'path'), field('Query', i.query)),
      field('Headers', i.headers, 'One "Name: value" per line.', 'headers'),
      field('Body', i.body),
      el('p', {}, el('button', { type: 'submit' }, 'Invoke')));
    main.replaceChildren(el('h1', {}, 'Invoke'), form, out);
    const mine = generation;
    const fns = await functionOptions(i.fn, ns && name ? `${ns}/${name}` : '');
    if (mine !== generation) return;
    if (!fns.length) { formError(form, { message: 'No function to invoke yet: deploy one first.' }); return; }
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const [fns2, fname] = i.fn.value.split('/');
      const headers = new Headers();
      for (const [n, line] of i.headers.value.split('\n').entries()) {
        if (!line.trim()) continue;
        const c = line.indexOf(':');
        if (c <= 0) { showFieldError(form, 'headers', `Line ${n + 1} is not "Name: value".`); return; }
        try { headers.append(line.slice(0, c).trim(), line.slice(c + 1).trim()); } catch (e) {
          showFieldError(form, 'headers', `Line ${n + 1}: ${e.message}`); return;
        }
      }
      let path = i.path.value.trim() || '/';
      if (!path.startsWith('/')) path = '/' + path;
      const target = `/${i.mode.value === 'async' ? 'async-function' : 'function'}/${encodeURIComponent(fname)}.${encodeURIComponent(fns2)}${path}${i.query.value.trim() ? '?' + i.query.value.trim().replace(/^\?/, '') : ''}`;
      const method = i.method.value;
      const t0 = performance.now();
      out.replaceChildren(el('p', { class: 'hint' }, `${method} ${target} …`));
      let resp;
      try {
        // No Authorization header: a function never sees the admin token.
        resp = await fetch(target, { method, headers, body: method === 'GET' ? undefined : i.body.value, cache: 'no-store', credentials: 'omit' });
      } catch (e) {
        out.replaceChildren(el('p', { class: 'error', role: 'alert' }, `The request failed: ${e.message}`));
        return;
      }
      const blob = await resp.blob();
      const took = performance.now() - t0;
      const ct = resp.headers.get('Content-Type') || '';
      let text = '';
      const shown = blob.size <= (1 << 20);
      if (shown) {
        text = await blob.text();
        if (ct.includes('json')) { try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* as sent */ } }
      }
      const callId = resp.headers.get('X-Call-Id') || '';
      // As bytes: a function's HTML must never open as a page of nimbus.
      const url = URL.createObjectURL(new Blob([blob], { type: 'application/octet-stream' }));
      leave.push(() => URL.revokeObjectURL(url));
      out.replaceChildren(el('section', {},
        el('h2', {}, 'Response'),
        el('dl', { class: 'kv' },
          el('dt', {}, 'Status'), el('dd', { id: 'status', class: resp.status >= 500 ? 'bad' : resp.status >= 400 ? 'warn' : 'ok' }, `${resp.status} ${resp.statusText}`),
          el('dt', {}, 'Took'), el('dd', {}, `${took.toFixed(1)} ms`),
          el('dt', {}, 'Call id'), el('dd', { class: 'mono' }, callId ? el('a', { href: `#/calls/${encodeURIComponent(callId)}` }, callId) : '–')),
        el('h3', {}, 'Headers'),
        el('table', {}, el('tbody', {}, [...resp.headers].map(([k, v]) => el('tr', {}, el('td', { class: 'mono' }, k), el('td', { class: 'mono' }, v))))),
        el('h3', {}, 'Body'),
        shown ? el('pre', { id: 'body' }, text || '(empty)') : el('p', {}, `${blob.size} bytes: too large to show here.`),
        el('p', {}, el('a', { href: url, download: `${fname}-response` }, 'Download the body'))));
    });
  }

  async function pageCalls(arg) {
    const mine = generation;
    let id = '';
    let params = new URLSearchParams();
    if (arg && arg.startsWith('?')) params = new URLSearchParams(arg.slice(1));
    else if (arg) id = arg;
    const idInput = el('input', { type: 'text', value: id, spellcheck: 'false', placeholder: 'the X-Call-Id of a call' });
    const fnSel = el('select', {}, el('option', { value: '' }, 'every function'));
    const one = el('div', { id: 'call' });
    const tbody = el('tbody');
    const lookup = el('form', { class: 'card', novalidate: true }, formErrorBox(),
      el('div', { class: 'row' }, field('Call id', idInput, null, 'id'), el('div', {}, el('button', { type: 'submit' }, 'Look up'))));
    lookup.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (idInput.value.trim()) location.hash = `#/calls/${encodeURIComponent(idInput.value.trim())}`;
    });
    main.replaceChildren(el('h1', {}, 'Calls'), lookup, one,
      el('h2', {}, 'Recent calls'), el('div', { class: 'row' }, field('Function', fnSel)),
      el('div', { class: 'scroll' }, el('table', {}, callHead(), tbody)));
    if (id) {
      try {
        const c = await api('GET', `/v1/calls/${encodeURIComponent(id)}`);
        if (mine !== generation) return;
        one.replaceChildren(el('dl', { class: 'kv card' }, Object.entries(c).map(([k, v]) => [el('dt', {}, k), el('dd', { class: 'mono' }, typeof v === 'object' ? JSON.stringify(v) : String(v))])));
      } catch (e) { formError(lookup, e.status === 404 ? { message: `No call ${id} is recorded (records appear a moment after a call ends and are kept a day).` } : e); }
    }
    const list = await api('GET', '/v1/functions');
    if (mine !== generation) return;
    for (const v of (list.functions || [])) {
      const f = v.function;
      fnSel.append(el('option', { value: `${f.namespace}/${f.name}`, selected: params.get('function') === f.name && (params.get('namespace') || 'default') === f.namespace }, `${f.name} (${f.namespace})`));
    }
    const load = async () => {
      const [ns, name] = fnSel.value ? fnSel.value.split('/') : ['', ''];
      const r = await api('GET', `/v1/calls?${q({ function: name, namespace: ns, limit: 100 })}`);
      tbody.replaceChildren(...callRows(r.calls || []));
    };
    fnSel.addEventListener('change', load);
    if (mine !== generation) return; // left while looking things up
    await every(5000, load);
  }

  async function pageDeadLetters() {
    const tbody = el('tbody');
    const detail = el('div', { id: 'deadletter' });
    const err = el('p', { class: 'error', role: 'alert', hidden: true });
    main.replaceChildren(el('h1', {}, 'Dead letters'),
      el('p', { class: 'hint' }, 'Async calls that ran out of attempts or passed their maximum event age. Redrive queues one again with fresh attempts.'),
      err, detail,
      el('div', { class: 'scroll' }, el('table', { id: 'deadletters' }, el('thead', {}, el('tr', {},
        el('th', {}, 'Call id'), el('th', {}, 'Function'), el('th', { class: 'num' }, 'Attempts'), el('th', { class: 'num' }, 'Last status'),
        el('th', { class: 'hide-narrow' }, 'Error'), el('th', { class: 'hide-narrow' }, 'Queued'), el('th', {}, ''))), tbody)));
    const act = async (what, id) => {
      try {
        if (what === 'open') {
          const d = await api('GET', `/v1/deadletters/${encodeURIComponent(id)}`);
          const m = d.message || {};
          let body = '';
          try { body = m.body ? new TextDecoder().decode(Uint8Array.from(atob(m.body), (c) => c.charCodeAt(0))) : ''; } catch (e) { body = m.body; }
          detail.replaceChildren(el('section', {}, el('h2', {}, 'Dead letter ', el('span', { class: 'mono' }, id)),
            el('dl', { class: 'kv' },
              el('dt', {}, 'Function'), el('dd', {}, `${d.namespace}/${d.function}`),
              el('dt', {}, 'Request'), el('dd', { class: 'mono' }, `${m.method || 'POST'} ${m.path || '/'}${m.query ? '?' + m.query : ''}`),
              el('dt', {}, 'Attempts'), el('dd', {}, String(d.attempts)),
              el('dt', {}, 'Error'), el('dd', { class: 'bad' }, d.error || '–')),
            el('h3', {}, 'Body'), el('pre', {}, body || '(empty)'),
            el('p', {}, el('button', { type: 'button', onclick: () => act('redrive', id) }, 'Redrive'), ' ',
              el('button', { type: 'button', class: 'danger', onclick: () => act('purge', id) }, 'Purge'))));
          return;
        }
        if (what === 'redrive') await api('POST', `/v1/deadletters/${encodeURIComponent(id)}/redrive`);
        if (what === 'purge') {
          if (!confirm(`Purge ${id}? The call is dropped for good.`)) return;
          await api('DELETE', `/v1/deadletters/${encodeURIComponent(id)}`);
        }
        detail.replaceChildren(el('p', { class: 'ok', role: 'status' }, what === 'redrive' ? `Queued ${id} again.` : `Purged ${id}.`));
        await load();
      } catch (e) { err.textContent = e.message; err.hidden = false; }
    };
    const load = async () => {
      const r = await api('GET', '/v1/deadletters');
      const list = r.deadLetters || [];
      err.hidden = true;
      tbody.replaceChildren(...(list.length ? list.map((d) => el('tr', {},
        el('td', { class: 'mono' }, d.callId), el('td', {}, `${d.namespace}/${d.function}`),
        el('td', { class: 'num' }, String(d.attempts)), el('td', { class: 'num' }, d.lastStatus ? String(d.lastStatus) : '–'),
        el('td', { class: 'hide-narrow bad' }, d.error || ''), el('td', { class: 'hide-narrow' }, fmtTime(d.enqueued)),
        el('td', {}, el('button', { type: 'button', class: 'secondary', onclick: () => act('open', d.callId) }, 'Open'), ' ',
          el('button', { type: 'button', onclick: () => act('redrive', d.callId) }, 'Redrive')))) :
        [el('tr', {}, el('td', { colspan: 7, class: 'hint' }, 'No dead letters.'))]));
    };
    await every(5000, () => load().catch((e) => { err.textContent = e.message; err.hidden = false; }));
  }

  // listPage: a table of things with a delete button each, and a form that
  // creates one.
  function listPage(title, hint, cols, formFields, create, remove) {
    const tbody = el('tbody');
    const err = el('p', { class: 'error', role: 'alert', hidden: true });
    const form = el('form', { class: 'card', novalidate: true }, el('h2', {}, 'New'), formErrorBox(), formFields,
      el('p', {}, el('button', { type: 'submit' }, 'Create')));
    const done = el('p', { role: 'status', class: 'ok' });
    main.replaceChildren(el('h1', {}, title), hint ? el('p', { class: 'hint' }, hint) : null, err,
      el('div', { class: 'scroll' }, el('table', {}, el('thead', {}, el('tr', {}, cols.map((c) => el('th', {}, c[0])), el('th', {}, ''))), tbody)),
      form, done);
    let rows = [];
    const show = () => {
      tbody.replaceChildren(...(rows.length ? rows.map((r) => el('tr', {}, cols.map((c) => el('td', { class: c[2] || '' }, c[1](r))),
        el('td', {}, el('button', { type: 'button', class: 'danger', onclick: async () => {
          try { await remove(r); rows = rows.filter((x) => x !== r); show(); done.textContent = 'Deleted.'; } catch (e) { err.textContent = e.message; err.hidden = false; }
        } }, 'Delete')))) : [el('tr', {}, el('td', { colspan: cols.length + 1, class: 'hint' }, 'None yet.'))]));
    };
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      done.textContent = '';
      try {
        await create(form);
        done.textContent = 'Created.';
        form.reset();
        await reload();
      } catch (e) { if (e.status !== 401) formError(form, e); }
    });
    let load;
    const reload = async () => { rows = await load(); err.hidden = true; show(); };
    return {
      form, start: (f) => { load = f; return every(10000, () => reload().catch((e) => { err.textContent = e.message; err.hidden = false; })); },
    };
  }

  async function pageTriggers() {
    const i = {
      name: el('input', { type: 'text', spellcheck: 'false' }), namespace: el('input', { type: 'text', value: 'default' }),
      schedule: el('input', { type: 'text', placeholder: '*/5 * * * *, @hourly or @every 30s' }), fn: el('input', { type: 'text', spellcheck: 'false' }),
      path: el('input', { type: 'text', value: '/' }), body: el('textarea'),
    };
    const p = listPage('Triggers', 'Cron triggers: at each time, one async call of the function.',
      [['Name', (t) => t.name], ['Namespace', (t) => t.namespace], ['Schedule', (t) => t.schedule, 'mono'], ['Function', (t) => t.function], ['Path', (t) => t.path || '/', 'mono']],
      [el('div', { class: 'row' }, field('Name', i.name, null, 'name'), field('Namespace', i.namespace, null, 'namespace')),
        el('div', { class: 'row' }, field('Schedule', i.schedule, null, 'schedule'), field('Function', i.fn, null, 'function'), field('Path', i.path, null, 'path')),
        field('Body', i.body, null, 'body')],
      async (form) => {
        if (!i.name.value.trim()) { const e = new ApiError(400, 'Give the trigger a name.', 'name'); throw e; }
        await api('PUT', `/v1/triggers/${encodeURIComponent(i.name.value.trim())}?${q({ namespace: i.namespace.value.trim() })}`,
          { body: { schedule: i.schedule.value.trim(), function: i.fn.value.trim(), path: i.path.value.trim(), body: i.body.value } });
      },
      (t) => api('DELETE', `/v1/triggers/${encodeURIComponent(t.name)}?${q({ namespace: t.namespace })}`));
    await p.start(async () => (await api('GET', '/v1/triggers')).triggers || []);
  }

  async function pageSecrets() {
    const i = { name: el('input', { type: 'text', spellcheck: 'false' }), namespace: el('input', { type: 'text', value: 'default' }), value: el('textarea', { spellcheck: 'false', autocomplete: 'off' }) };
    const p = listPage('Secrets', 'Names only: a value is never shown again once stored.',
      [['Name', (s) => s.name], ['Namespace', (s) => s.namespace], ['Updated', (s) => fmtTime(s.updated)]],
      [el('div', { class: 'row' }, field('Name', i.name, null, 'name'), field('Namespace', i.namespace, null, 'namespace')), field('Value', i.value, null, 'value')],
      async () => {
        if (!i.name.value.trim()) throw new ApiError(400, 'Give the secret a name.', 'name');
        await api('PUT', `/v1/secrets/${encodeURIComponent(i.name.value.trim())}?${q({ namespace: i.namespace.value.trim() })}`, { body: { value: i.value.value } });
      },
      (s) => api('DELETE', `/v1/secrets/${encodeURIComponent(s.name)}?${q({ namespace: s.namespace })}`));
    await p.start(async () => (await api('GET', '/v1/secrets')).secrets || []);
  }

  async function pageSubscriptions() {
    const space = el('input', { type: 'text', value: sessionStorage.getItem('nimbus.space') || 'default', spellcheck: 'false' });
    const i = {
      type: el('select', {}, el('option', { value: 'async' }, 'async'), el('option', { value: 'sync' }, 'sync')),
      eventType: el('input', { type: 'text', placeholder: 'user.created or http.request', spellcheck: 'false' }),
      functionId: el('input', { type: 'text', spellcheck: 'false' }),
      path: el('input', { type: 'text', value: '/' }), method: el('input', { type: 'text', value: 'POST' }),
    };
    const sp = () => encodeURIComponent(space.value.trim() || 'default');
    const p = listPage('Event subscriptions', 'Event Gateway subscriptions of a space: which function gets which event type.',
      [['Type', (s) => s.type], ['Event type', (s) => s.eventType], ['Function', (s) => s.functionId], ['Path', (s) => s.path, 'mono'], ['Method', (s) => s.method || '']],
      [el('div', { class: 'row' }, field('Type', i.type, null, 'type'), field('Event type', i.eventType, null, 'eventType'), field('Function id', i.functionId, 'As registered in the space.', 'functionId')),
        el('div', { class: 'row' }, field('Path', i.path, null, 'path'), field('Method', i.method, 'sync http.request only', 'method'))],
      async () => {
        const body = { type: i.type.value, eventType: i.eventType.value.trim(), functionId: i.functionId.value.trim(), path: i.path.value.trim() || '/' };
        if (body.type === 'sync') body.method = i.method.value.trim();
        await api('POST', `/v1/spaces/${sp()}/subscriptions`, { body });
      },
      (s) => api('DELETE', `/v1/spaces/${sp()}/subscriptions/${encodeURIComponent(s.subscriptionId)}`));
    main.insertBefore(el('div', { class: 'row' }, field('Space', space)), main.children[1]);
    const load = async () => (await api('GET', `/v1/spaces/${sp()}/subscriptions`)).subscriptions || [];
    space.addEventListener('change', () => { sessionStorage.setItem('nimbus.space', space.value.trim()); route(); });
    await p.start(load);
  }

  // ---- routing ----

  const routes = [
    [/^#\/signin$/, pageSignin],
    [/^#\/functions$/, pageFunctions],
    [/^#\/fn\/([^/]+)\/([^/]+)$/, pageFunction],
    [/^#\/deploy$/, pageDeploy],
    [/^#\/invoke(?:\/([^/]+)\/([^/]+))?$/, pageInvoke],
    [/^#\/calls(?:\/([^?]+)|(\?.*))?$/, (id, query) => pageCalls(id || query)],
    [/^#\/deadletters$/, pageDeadLetters],
    [/^#\/triggers$/, pageTriggers],
    [/^#\/subscriptions$/, pageSubscriptions],
    [/^#\/secrets$/, pageSecrets],
  ];

  function route() {
    for (const f of leave) f();
    leave = [];
    generation++;
    const hash = location.hash || '#/functions';
    if (!token() && hash !== '#/signin') { location.hash = '#/signin'; return; }
    nav.hidden = !token();
    for (const a of nav.querySelectorAll('a')) {
      if (hash.startsWith(a.getAttribute('href'))) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    for (const [re, page] of routes) {
      const m = hash.match(re);
      if (!m) continue;
      let args;
      try {
        args = m.slice(1).map((x) => (x === undefined ? x : decodeURIComponent(x)));
      } catch (e) {
        main.replaceChildren(el('h1', {}, 'Not found'), el('p', {}, 'The address is not well-formed: ', el('span', { class: 'mono' }, hash)));
        return;
      }
      main.replaceChildren();
      Promise.resolve(page(...args)).catch((e) => {
        if (e.status === 401) return;
        main.append(el('p', { class: 'error', role: 'alert' }, e.message));
      });
      return;
    }
    main.replaceChildren(el('h1', {}, 'Not found'), el('p', {}, 'No page is at ', el('span', { class: 'mono' }, hash), '.'));
  }

  document.getElementById('signout').addEventListener('click', () => signOut());
  window.addEventListener('hashchange', route);
  route();
})();
