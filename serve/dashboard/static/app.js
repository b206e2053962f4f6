// The micro-fn dashboard's page: plain DOM and SVG, no framework, no build step. It reads serve's dashboard API
// (/api/overview every 2 s, /api/events as Server-Sent Events, /api/logs, /api/dlq) and draws what it gets.
'use strict';
(() => {
  const $ = (selector) => document.querySelector(selector);
  const SVG = 'http://www.w3.org/2000/svg';
  const FEED_ROWS = 200;

  /** An element with attributes and children (strings become text: nothing from serve is parsed as HTML). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, v);
    for (const c of children) node.append(c instanceof Node ? c : String(c ?? ''));
    return node;
  }
  const svgEl = (tag, attrs) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    return node;
  };
  const ms = (v) => (v === undefined || v === null ? '–' : v < 10 ? `${v.toFixed(2)} ms` : `${v.toFixed(1)} ms`);
  const clock = (t) => new Date(t).toLocaleTimeString([], { hour12: false });
  const ago = (iso) => {
    if (!iso) return '–';
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
  };

  let loggedOut = false;
  async function api(path, init) {
    const res = await fetch(path, init);
    if (res.status === 401) {
      loggedOut = true;
      banner('Logged out: run `micro-fn dashboard` and open the link it prints.');
      throw new Error('401');
    }
    const body = await res.json();
    if (!res.ok) throw new Error(body.detail || res.statusText);
    return body;
  }
  function banner(text) {
    const b = $('#banner');
    b.textContent = text;
    b.hidden = !text;
  }

  // --- functions and charts
  let overview;
  async function refresh() {
    if (loggedOut) return;
    try {
      overview = await api('/api/overview');
    } catch (err) {
      if (!loggedOut) setStatus('serve not answering', false);
      return;
    }
    $('#uptime').textContent = `up ${duration(overview.uptime)}`;
    renderFunctions(overview.functions);
    renderCharts(overview.series);
    renderLogChoice(overview.functions);
  }
  const duration = (s) =>
    s < 60
      ? `${s}s`
      : s < 3600
        ? `${Math.floor(s / 60)}m ${s % 60}s`
        : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;

  function renderFunctions(functions) {
    $('#no-functions').hidden = functions.length > 0;
    const rows = functions.map((f) => {
      const p = f.pool;
      return el(
        'tr',
        { 'data-function': f.name },
        el('td', {}, el('strong', {}, f.name), f.kind === 'lambda' ? el('span', { class: 'dim' }, ' lambda') : ''),
        el('td', { class: 'num' }, p ? `${p.warm}${p.starting ? ` (+${p.starting})` : ''}` : '–'),
        el('td', { class: 'num', 'data-field': 'inflight' }, p ? p.inflight : '–'),
        el('td', { class: 'num' }, p ? p.queued + p.backlog : '–'),
        el('td', { class: 'num', 'data-field': 'invocations' }, f.invocations),
        el('td', { class: `num${f.errors ? ' err' : ''}`, 'data-field': 'errors' }, f.errors),
        el('td', { class: 'num' }, f.coldStarts),
        el('td', { class: 'num' }, ms(f.recent.p50)),
        el('td', { class: 'num' }, ms(f.recent.p99)),
        el('td', { class: 'dim' }, ago(f.last)),
      );
    });
    $('#functions tbody').replaceChildren(...rows);
  }

  function renderCharts(series) {
    const cards = series.map((s) => {
      const pts = s.points;
      const perSecond = pts.map((p) => p.count / (s.step / 1000));
      const errors = pts.map((p) => p.errors);
      const p50 = pts.map((p) => p.p50);
      const p99 = pts.map((p) => p.p99);
      const total = pts.reduce((n, p) => n + p.count, 0);
      const failed = errors.reduce((a, b) => a + b, 0);
      const last = pts.filter((p) => p.p50 !== undefined).pop();
      return el(
        'div',
        { class: 'chart', 'data-function': s.name },
        el('h3', {}, s.name),
        chart([{ values: perSecond, color: 'var(--rate)', area: true }]),
        el(
          'div',
          { class: 'legend' },
          el('span', { class: 'key-rate' }, '■'),
          ` rate, now ${perSecond[perSecond.length - 1].toFixed(1)}/s · ${total} in 5 min`,
        ),
        chart([{ values: errors, color: 'var(--err)', area: true }]),
        el('div', { class: 'legend' }, el('span', { class: 'err' }, '■'), ` errors · ${failed} in 5 min`),
        chart([
          { values: p99, color: 'var(--p99)' },
          { values: p50, color: 'var(--p50)' },
        ]),
        el(
          'div',
          { class: 'legend' },
          el('span', { class: 'key-p50' }, '■'),
          ` p50 ${ms(last && last.p50)} `,
          el('span', { class: 'key-p99' }, '■'),
          ` p99 ${ms(last && last.p99)}`,
        ),
      );
    });
    $('#charts').replaceChildren(...(cards.length ? cards : [el('p', { class: 'dim' }, 'No invocations yet.')]));
  }

  /**
   * A small step chart of one or more series sharing a scale: each value spans its 5 s step, so a lone value shows as
   * a dash; missing values (no invocation in the step) break the line.
   */
  function chart(lines) {
    const W = 300;
    const H = 56;
    const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img' });
    const max = Math.max(1e-9, ...lines.flatMap((l) => l.values.filter((v) => v !== undefined)));
    svg.append(svgEl('line', { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, stroke: 'var(--line)' }));
    for (const line of lines) {
      const w = W / Math.max(1, line.values.length);
      const y = (v) => (H - 2 - (v / max) * (H - 6)).toFixed(1);
      let d = '';
      let pen = false;
      line.values.forEach((v, i) => {
        if (v === undefined) return void (pen = false);
        d += `${pen ? 'L' : 'M'}${(i * w).toFixed(1)},${y(v)}H${((i + 1) * w).toFixed(1)}`;
        pen = true;
      });
      if (!d) continue;
      if (line.area) svg.append(svgEl('path', { d: `${d}V${H}H0Z`, fill: line.color, opacity: 0.15 }));
      const stroke = { fill: 'none', stroke: line.color, 'stroke-width': 1.5, 'vector-effect': 'non-scaling-stroke' };
      svg.append(svgEl('path', { d, ...stroke }));
    }
    const top = svgEl('text', { x: 2, y: 10, 'font-size': 9, fill: 'var(--dim)' });
    top.textContent = max >= 1 ? max.toFixed(max < 10 ? 1 : 0) : max > 1e-6 ? max.toFixed(2) : '';
    svg.append(top);
    return svg;
  }

  // --- live feed
  let dropped = 0;
  function setStatus(text, live) {
    const s = $('#status');
    s.textContent = text;
    s.className = live ? 'pill live' : 'pill';
  }
  let soon;
  const refreshSoon = () => {
    clearTimeout(soon);
    soon = setTimeout(refresh, 250);
  };
  function connect() {
    const source = new EventSource('/api/events');
    source.onopen = () => setStatus('live', true);
    source.onerror = () => {
      setStatus('reconnecting…', false);
      if (loggedOut) source.close();
      else refresh(); // learns of a logout through the API's 401
    };
    source.onmessage = (message) => {
      const e = JSON.parse(message.data);
      const body = $('#feed tbody');
      const what = e.topic ? `${e.topic}#${e.attempt}` : e.endpoint || '';
      const row = el(
        'tr',
        { class: 'new', 'data-function': e.function },
        el('td', { class: 'dim' }, clock(e.at)),
        el('td', {}, e.function),
        el('td', {}, what),
        el(
          'td',
          { class: e.ok ? 'ok' : 'err', title: e.error || '' },
          e.started ? e.status : `${e.status} not started`,
        ),
        el('td', { class: 'num' }, e.ms.toFixed(1)),
        el('td', { class: 'dim' }, e.cold ? 'cold' : 'warm'),
        el('td', { class: 'dim' }, e.id),
      );
      body.prepend(row);
      while (body.rows.length > FEED_ROWS) body.lastElementChild.remove();
      refreshSoon();
      if (e.topic) dlqSoon();
    };
    source.addEventListener('dropped', (message) => {
      dropped += JSON.parse(message.data).dropped;
      $('#dropped').textContent = `${dropped} event${dropped === 1 ? '' : 's'} not shown: the page fell behind`;
    });
  }

  // --- logs
  function renderLogChoice(functions) {
    const select = $('#log-function');
    const names = functions.map((f) => f.name);
    const have = [...select.options].map((o) => o.value);
    if (names.join('\n') === have.join('\n')) return;
    const chosen = select.value;
    select.replaceChildren(...names.map((n) => el('option', { value: n }, n)));
    if (names.includes(chosen)) select.value = chosen;
    loadLogs();
  }
  async function loadLogs() {
    const name = $('#log-function').value;
    const pre = $('#logs');
    if (!name) return void (pre.textContent = 'No function deployed.');
    let body;
    try {
      body = await api(`/api/logs?function=${encodeURIComponent(name)}&lines=300`);
    } catch {
      return;
    }
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = body.lines.length
      ? body.lines
          .map((l) => `${l.time.slice(11, 23)} ${l.invocation} ${l.stream === 'stderr' ? '!' : ' '} ${l.message}`)
          .join('\n')
      : `${name} has printed nothing yet.`;
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }

  // --- dead letters
  async function loadDeadLetters() {
    if (loggedOut) return;
    let body;
    try {
      body = await api('/api/dlq');
    } catch {
      return;
    }
    // Topics without dead letters are left out, unless the page replayed some: its note stays.
    const topics = body.topics
      .filter((t) => t.count > 0 || replays.has(t.topic))
      .map((t) =>
        el(
          'div',
          { class: 'topic', 'data-topic': t.topic },
          el(
            'h3',
            {},
            el('span', {}, t.topic),
            el(
              'span',
              { class: t.count ? 'err' : 'dim', 'data-field': 'count' },
              `${t.count} dead letter${t.count === 1 ? '' : 's'}`,
            ),
            t.count ? replayButton(t.topic) : '',
            el('span', { class: 'dim', 'data-field': 'result' }, replays.get(t.topic) || ''),
          ),
          t.messages.length
            ? el(
                'table',
                {},
                ...t.messages.map((m) => {
                  const lastAttempt = (m.attempts || []).slice(-1)[0];
                  return el(
                    'tr',
                    {},
                    el('td', { class: 'dim' }, clock(m.at)),
                    el('td', {}, el('code', {}, m.id)),
                    el(
                      'td',
                      { class: 'err' },
                      lastAttempt
                        ? `${lastAttempt.code} ${lastAttempt.detail}`
                        : m.headers['micro-dead-letter-reason'] || '',
                    ),
                    el('td', {}, el('code', {}, m.body.length > 120 ? `${m.body.slice(0, 120)}…` : m.body)),
                  );
                }),
              )
            : '',
        ),
      );
    $('#dlq').replaceChildren(...(topics.length ? topics : [el('p', { class: 'dim' }, 'No dead letters.')]));
  }
  /** What the last Replay of each topic said, shown until the next one. */
  const replays = new Map();
  function replayButton(topic) {
    const button = el('button', { type: 'button' }, 'Replay');
    button.addEventListener('click', async () => {
      button.disabled = true;
      const result = button.parentElement.querySelector('[data-field="result"]');
      try {
        const { replayed } = await api('/api/dlq/replay', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ topic }),
        });
        replays.set(topic, `replayed ${replayed}`);
      } catch (err) {
        replays.set(topic, `replay failed: ${err.message}`);
      }
      result.textContent = replays.get(topic);
      setTimeout(loadDeadLetters, 1500);
    });
    return button;
  }
  let dlqTimer;
  const dlqSoon = () => {
    clearTimeout(dlqTimer);
    dlqTimer = setTimeout(loadDeadLetters, 500);
  };

  $('#log-function').addEventListener('change', loadLogs);
  refresh().then(loadLogs);
  loadDeadLetters();
  connect();
  setInterval(refresh, 2000);
  setInterval(() => $('#follow').checked && loadLogs(), 2000);
  setInterval(loadDeadLetters, 10000);
})();
