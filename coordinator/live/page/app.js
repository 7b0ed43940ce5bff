/* global document, window, EventSource, uPlot */
/**
 * The live run page: reads the run's records from /events (server-sent events: a snapshot, then
 * each record as it happens; see coordinator/live/records.ts), keeps the run's state as
 * run-state.ts does, and draws it: cards, uPlot charts, the epoch, participant and event tables.
 * Text from the run (participant names, messages) only ever goes in as textContent.
 */
'use strict';

const MAX_STEP_POINTS = 6000;
const MAX_EVENTS = 500;
const COLORS = { train: '#2563eb', val: '#dc2626', throughput: '#059669', compute: '#2563eb', reduce: '#d97706', apply: '#7c3aed', broadcast: '#059669' };
const PHASES = ['compute', 'reduce', 'apply', 'broadcast'];

const S = { run: null, steps: [], epochs: [], participants: [], departed: null, events: [], end: null };
let connected = false;
let renderTimer;
/** When each epoch (by epoch and end time) was first drawn: the row's data-shown-at. */
const shownAt = new Map();
const charts = {};
/** The metrics and validation the charts were made for. */
let chartsKey = '';

const $ = (id) => document.getElementById(id);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function fixed(v, digits = 4) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  return Math.abs(v) >= 1e4 ? v.toExponential(3) : v.toFixed(digits);
}

function count(v) {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : Math.round(v).toLocaleString('en-US');
}

function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

function clock(time) {
  return time ? new Date(time).toLocaleTimeString('en-GB') : '';
}

// --- state: the records applied in order (as coordinator/live/run-state.ts) ---

function merge(a, b) {
  const n = a.steps + b.steps;
  const mean = (x, y) => (x === null || y === null ? (x ?? y) : (x * a.steps + y * b.steps) / n);
  const phases = {};
  for (const k of PHASES) phases[k] = (a.phases[k] * a.steps + b.phases[k] * b.steps) / n;
  return { ...b, steps: n, loss: mean(a.loss, b.loss), samplesPerSecond: mean(a.samplesPerSecond, b.samplesPerSecond), phases };
}

function apply(r) {
  switch (r.type) {
    case 'snapshot':
      Object.assign(S, { run: r.run, steps: r.steps.slice(), epochs: r.epochs.slice(), participants: r.participants, departed: r.departed ?? null, events: r.events.slice(), end: r.end });
      break;
    case 'run':
      S.run = r;
      S.end = null;
      break;
    case 'step':
      while (S.steps.length > 0 && S.steps[S.steps.length - 1].step >= r.step) S.steps.pop();
      S.steps.push(r);
      if (S.steps.length > MAX_STEP_POINTS) {
        const out = [];
        for (let i = 0; i + 1 < S.steps.length; i += 2) out.push(merge(S.steps[i], S.steps[i + 1]));
        if (S.steps.length % 2) out.push(S.steps[S.steps.length - 1]);
        S.steps = out;
      }
      break;
    case 'epoch':
      while (S.epochs.length > 0 && S.epochs[S.epochs.length - 1].epoch >= r.epoch) S.epochs.pop();
      S.epochs.push(r);
      break;
    case 'participants':
      S.participants = r.rows;
      S.departed = r.departed ?? null;
      break;
    case 'event':
      S.events.push(r);
      if (S.events.length > MAX_EVENTS) S.events.splice(0, S.events.length - MAX_EVENTS);
      break;
    case 'end':
      S.end = r;
      break;
  }
}

// --- charts ---

function chart(id, xLabel, series, integerX, yRange) {
  const host = $(id);
  const opts = {
    width: Math.max(240, host.clientWidth),
    height: 200,
    scales: { x: { time: false }, ...(yRange ? { y: { range: yRange } } : {}) },
    axes: [{ label: xLabel, ...(integerX ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] } : {}) }, { size: 60 }],
    series: [{ label: xLabel }, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, points: { show: integerX ? undefined : false } }))],
    legend: { live: true },
  };
  charts[id] = { plot: new uPlot(opts, [[], ...series.map(() => [])], host), host };
  return charts[id];
}

function setData(id, data) {
  charts[id]?.plot.setData(data);
}

function metricNames() {
  return S.run ? S.run.metrics : [];
}

function hasVal() {
  return S.run ? S.run.valRows > 0 : S.epochs.some((e) => e.values.val_loss !== undefined);
}

/** Makes the charts once the run's metrics are known (a later run with other metrics rebuilds them). */
function ensureCharts() {
  const key = JSON.stringify([metricNames(), hasVal()]);
  if (chartsKey === key) return;
  for (const id of Object.keys(charts)) {
    charts[id].plot.destroy();
    delete charts[id];
  }
  chartsKey = key;
  const val = hasVal();
  const trainVal = [{ label: 'train', color: COLORS.train }, ...(val ? [{ label: 'validation', color: COLORS.val }] : [])];
  chart('chart-step-loss', 'step', [{ label: 'loss', color: COLORS.train }], false);
  chart('chart-epoch-loss', 'epoch', trainVal, true);
  chart('chart-throughput', 'step', [{ label: 'samples/s', color: COLORS.throughput }], false);
  chart('chart-phases', 'step', PHASES.map((p) => ({ label: p, color: COLORS[p] })), false, (_u, _min, max) => [0, phaseTop ?? max]);
  const holder = $('metric-charts');
  holder.replaceChildren();
  for (const name of metricNames()) {
    const figure = el('figure');
    figure.append(el('figcaption', `${name} by epoch: train and validation`));
    const host = el('div', null, 'chart');
    host.id = `chart-metric-${name}`;
    figure.append(host);
    holder.append(figure);
    chart(host.id, 'epoch', trainVal, true);
  }
}

/**
 * Top of the step-time chart: 1.5 times the 90th percentile of the points, so that the first
 * steps' warm-up (compiling kernels, loading weights) does not flatten the rest of the run.
 */
let phaseTop;

function drawCharts() {
  ensureCharts();
  const slowest = S.steps.map((s) => Math.max(...PHASES.map((p) => s.phases[p] * 1000))).sort((a, b) => a - b);
  phaseTop = slowest.length >= 10 ? slowest[Math.floor(slowest.length * 0.9)] * 1.5 : undefined;
  const steps = S.steps.map((s) => s.step);
  setData('chart-step-loss', [steps, S.steps.map((s) => s.loss)]);
  setData('chart-throughput', [steps, S.steps.map((s) => s.samplesPerSecond)]);
  setData('chart-phases', [steps, ...PHASES.map((p) => S.steps.map((s) => s.phases[p] * 1000))]);
  const epochs = S.epochs.map((e) => e.epoch);
  const series = (name) => [S.epochs.map((e) => e.values[name] ?? null), ...(hasVal() ? [S.epochs.map((e) => e.values[`val_${name}`] ?? null)] : [])];
  setData('chart-epoch-loss', [epochs, ...series('loss')]);
  for (const name of metricNames()) setData(`chart-metric-${name}`, [epochs, ...series(name)]);
}

// --- text ---

function stateName() {
  if (S.end) return S.end.outcome;
  if (!connected) return S.run ? 'disconnected' : 'connecting';
  return S.run ? 'training' : 'waiting';
}

function drawHeader() {
  const state = stateName();
  document.body.dataset.state = state;
  const run = S.run;
  if (run) {
    $('run-name').textContent = run.name;
    document.title = `${state === 'training' ? '▶ ' : ''}${run.name} · dptrain`;
    $('model').textContent = `model ${run.model} (${count(run.parameters)} parameters) · ${count(run.trainRows)} train / ${count(run.valRows)} validation / ${count(run.testRows)} test rows × ${run.features} features · batch ${run.batchSize} · started ${new Date(run.time).toLocaleString('en-GB')}${run.resumedFrom ? ' (resumed)' : ''}`;
  }
  const lastStep = S.steps[S.steps.length - 1];
  const where = lastStep ? `epoch ${lastStep.epoch} of ${run ? run.epochs : '?'}, batch ${lastStep.batch} of ${lastStep.batches}, step ${count(lastStep.step)}` : 'before the first step';
  const text = {
    connecting: 'Connecting to the coordinator…',
    waiting: 'Waiting for the run to start…',
    training: `Training: ${where}`,
    disconnected: `Connection lost, reconnecting… (last seen: ${where})`,
    finished: S.end?.text ?? 'Finished',
    interrupted: S.end?.text ?? 'Interrupted',
    failed: S.end?.text ?? 'Failed',
  }[state];
  $('status').textContent = text;
  $('status').className = `status ${state}`;
}

function drawCards() {
  const run = S.run;
  const last = S.steps[S.steps.length - 1];
  const epochsDone = S.epochs.length;
  $('progress').textContent = run ? `${epochsDone} / ${run.epochs} epochs` : '–';
  if (run && epochsDone > 0 && !S.end) {
    const recent = S.epochs.slice(-5);
    const perEpoch = recent.reduce((a, e) => a + e.seconds, 0) / recent.length;
    $('progress-detail').textContent = `about ${duration(perEpoch * (run.epochs - epochsDone))} left at ${duration(perEpoch)} per epoch (early stopping may end it sooner)`;
  } else $('progress-detail').textContent = last ? `step ${count(last.step)}` : '';
  $('loss-now').textContent = fixed(last?.loss);
  const lastEpoch = S.epochs[epochsDone - 1];
  $('val-loss').textContent = fixed(lastEpoch?.values.val_loss ?? null);
  $('val-detail').textContent = lastEpoch ? `epoch ${lastEpoch.epoch}; train loss ${fixed(lastEpoch.values.loss)}` : 'at the last epoch\u2019s end';
  $('throughput').textContent = count(last?.samplesPerSecond);
  if (last) {
    const total = PHASES.reduce((a, p) => a + last.phases[p], 0);
    $('step-time').textContent = `${(total * 1000).toFixed(1)} ms`;
    $('step-phases').textContent = PHASES.map((p) => `${p} ${(last.phases[p] * 1000).toFixed(1)}`).join(' · ') + ' ms';
  }
  const active = S.participants.filter((p) => p.state !== 'left');
  const threads = active.filter((p) => p.kind === 'thread').length;
  $('participant-count').textContent = String(active.length);
  // departed nodes past the most recent ones have no row: the feed sums them in `departed`
  const left = S.participants.length - active.length + (S.departed?.nodes ?? 0);
  $('participant-detail').textContent = `${threads} thread(s), ${active.length - threads} worker node(s)${left > 0 ? `, ${left} left` : ''}`;
}

function drawEpochs() {
  const keys = ['loss', ...metricNames()];
  const columns = [...keys, ...(hasVal() ? keys.map((k) => `val_${k}`) : [])];
  const head = el('tr');
  for (const name of ['Epoch', ...columns, 'Time', 'Samples/s']) head.append(el('th', name, name === 'Epoch' ? '' : 'num'));
  $('epochs').tHead.replaceChildren(head);
  const rows = S.epochs.map((e) => {
    const key = `${e.epoch}@${e.time}`;
    if (!shownAt.has(key)) shownAt.set(key, Date.now());
    const tr = el('tr');
    tr.dataset.epoch = String(e.epoch);
    tr.dataset.values = JSON.stringify(e.values);
    tr.dataset.shownAt = String(shownAt.get(key));
    tr.append(el('td', e.epoch));
    for (const c of columns) tr.append(el('td', fixed(e.values[c] ?? null), 'num'));
    tr.append(el('td', duration(e.seconds), 'num'), el('td', count(e.samplesPerSecond), 'num'));
    return tr;
  });
  $('epochs').tBodies[0].replaceChildren(...rows.reverse());
  $('epochs-empty').hidden = rows.length > 0;
}

function drawParticipants() {
  const rows = S.participants.map((p) => {
    const tr = el('tr', null, `state-${p.state}`);
    tr.dataset.id = p.id;
    tr.dataset.kind = p.kind;
    tr.dataset.state = p.state;
    const backend = [p.backend, p.adapter, p.devices > 1 ? `${p.devices} devices` : null].filter(Boolean).join(', ');
    tr.append(
      el('td', p.id),
      el('td', p.kind === 'thread' ? 'thread' : 'worker node'),
      el('td', p.name),
      el('td', backend, 'wrap'),
      el('td', p.address ?? (p.kind === 'thread' ? 'this machine' : '–')),
      el('td', p.state, `state ${p.state}`),
      el('td', count(p.samplesPerSecond), 'num'),
      el('td', p.share === null ? '–' : `${(p.share * 100).toFixed(1)}%`, 'num'),
      el('td', count(p.samples), 'num'),
      el('td', count(p.steps), 'num'),
      el('td', count(p.failures), p.failures > 0 ? 'num bad' : 'num'),
      el('td', p.left ?? '', 'wrap'),
    );
    return tr;
  });
  $('participants').tBodies[0].replaceChildren(...rows);
}

const KIND_LABELS = { start: 'start', resumed: 'resumed', joined: 'joined', left: 'left', failure: 'failure', straggler: 'straggler', checkpoint: 'checkpoint', 'checkpoint-failed': 'checkpoint failed', 'early-stop': 'early stopping', end: 'end' };

function drawEvents() {
  const items = S.events
    .slice()
    .reverse()
    .map((e) => {
      const li = el('li', null, `event ${e.kind}`);
      li.dataset.kind = e.kind;
      li.append(el('span', clock(e.time), 'time'), el('span', `step ${count(e.step)}`, 'step'), el('span', KIND_LABELS[e.kind] ?? e.kind, 'kind'), el('span', e.text, 'text'));
      return li;
    });
  $('events').replaceChildren(...(items.length ? items : [el('li', 'Nothing yet.', 'muted')]));
}

function render() {
  renderTimer = undefined;
  drawHeader();
  drawCards();
  drawCharts();
  drawEpochs();
  drawParticipants();
  drawEvents();
}

/** Draws soon, once for a burst of records. */
function schedule() {
  if (renderTimer === undefined) renderTimer = window.setTimeout(render, 50);
}

// --- the stream ---

const source = new EventSource('events');
source.onopen = () => {
  connected = true;
  schedule();
};
source.onmessage = (message) => {
  let record;
  try {
    record = JSON.parse(message.data);
  } catch {
    return;
  }
  apply(record);
  schedule();
};
source.onerror = () => {
  connected = false;
  // the coordinator stops serving when its run ends: the page keeps the run as it ended
  if (S.end) source.close();
  schedule();
};

window.addEventListener('resize', () => {
  for (const c of Object.values(charts)) c.plot.setSize({ width: Math.max(240, c.host.clientWidth), height: 200 });
});
schedule();
