// The CryptoCast dashboard: reads the versioned API, then follows /api/v1/stream.
// Every value from the server reaches the page through textContent, never as markup.
import uPlot from "./vendor/uPlot.esm.js";

const API = new URL("../api/v1/", location.href);
const SHOWN_CANDLES = 120;
const SHOWN_VERDICTS = 20;
const PREDICTIONS_READ = 500; // every model's: enough to hold the champion's for the candles shown
const SCORES_WINDOW = "30d"; // the scorecards' window: a bounded read, not every verdict ever
const SCORES_SPAN = "the last 30 days"; // SCORES_WINDOW in words
const REFRESH_AFTER_MS = 1000; // verdicts arriving together cause one refresh of the scores
const SCORES_EVERY_MS = 15000; // and the scores are read at most this often per tab
const RECONNECT_AFTER_MS = 3000;
const COLORS = ["#2563eb", "#d97706", "#7c3aed", "#059669", "#db2777", "#4b5563"];

const price = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 6 });
const ratio = new Intl.NumberFormat("en-US", { minimumFractionDigits: 3, maximumFractionDigits: 3 });
const percent = new Intl.NumberFormat("en-US", { style: "percent", maximumFractionDigits: 1 });

const $ = (id) => document.getElementById(id);
const seconds = (iso) => Date.parse(iso) / 1000;
const when = (iso) => (iso ? iso.slice(0, 16).replace("T", " ") + " UTC" : "–");
const num = (format, value) => (value == null ? "–" : format.format(value));
const range = (format, pair) => (pair ? `${format.format(pair[0])} – ${format.format(pair[1])}` : "–");
const served = (event) => event.role === "champion" || event.role == null;

const view = { symbol: null, candles: [], predictions: [], verdicts: [], charts: {}, socket: null };

async function api(path) {
  const response = await fetch(new URL(path, API));
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function fillTable(id, rows) {
  const body = $(id).tBodies[0];
  body.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement("tr");
      tr.append(...cells.map((c) => (c instanceof Node ? c : cell(c))));
      return tr;
    }),
  );
}

function draw(id, options, data) {
  view.charts[id]?.destroy();
  const box = $(id);
  view.charts[id] = new uPlot({ width: box.clientWidth, height: 240, ...options }, data, box);
}

// Series over a shared, sorted time axis: uPlot's one x array, null where a series has no point.
function aligned(xs, ...series) {
  const axis = [...new Set(xs)].sort((a, b) => a - b);
  const index = new Map(axis.map((x, i) => [x, i]));
  return [
    axis,
    ...series.map((points) => {
      const ys = new Array(axis.length).fill(null);
      for (const [x, y] of points) ys[index.get(x)] = y;
      return ys;
    }),
  ];
}

function drawPrice() {
  const closes = view.candles.map((c) => [seconds(c.close_time), c.close]);
  const forecasts = view.predictions.filter((p) => p.interval_80 && p.interval_95);
  const at = (p) => seconds(p.target_time);
  const data = aligned(
    [...closes.map(([x]) => x), ...view.predictions.map(at)],
    closes,
    view.predictions.map((p) => [at(p), p.predicted_close]),
    forecasts.map((p) => [at(p), p.interval_95.upper]),
    forecasts.map((p) => [at(p), p.interval_80.upper]),
    forecasts.map((p) => [at(p), p.interval_80.lower]),
    forecasts.map((p) => [at(p), p.interval_95.lower]),
  );
  const edge = (label) => ({
    label,
    stroke: "#93c5fd",
    width: 0.5,
    points: { show: false },
    value: (u, v) => num(price, v),
  });
  draw(
    "price-chart",
    {
      series: [
        {},
        { label: "close", stroke: "#111827", width: 1.5, spanGaps: true, points: { show: false }, value: (u, v) => num(price, v) },
        { label: "forecast", stroke: "#2563eb", dash: [4, 3], spanGaps: true, points: { show: false }, value: (u, v) => num(price, v) },
        edge("95% upper"),
        edge("80% upper"),
        edge("80% lower"),
        edge("95% lower"),
      ],
      bands: [
        { series: [3, 4], fill: "rgba(37, 99, 235, 0.12)" },
        { series: [4, 5], fill: "rgba(37, 99, 235, 0.28)" },
        { series: [5, 6], fill: "rgba(37, 99, 235, 0.12)" },
      ],
      axes: [{}, { size: 70, values: (u, ticks) => ticks.map((t) => price.format(t)) }],
    },
    data,
  );
  const last = view.candles.at(-1);
  $("last-close").textContent = num(price, last?.close);
  $("last-close-time").textContent = when(last?.close_time);
  const next = view.predictions.at(-1);
  $("forecast-time").textContent = when(next?.target_time);
  $("forecast").textContent = num(price, next?.predicted_close);
  $("band-80").textContent = range(price, next?.interval_80 && [next.interval_80.lower, next.interval_80.upper]);
  $("band-95").textContent = range(price, next?.interval_95 && [next.interval_95.lower, next.interval_95.upper]);
  $("p-up").textContent = num(percent, next?.p_up);
  $("forecast-gate").textContent = next?.gate ?? "–";
}

function drawSkill(skill) {
  const models = Object.entries(skill.models);
  $("trailing").textContent = String(skill.trailing);
  const xs = models.flatMap(([, m]) => m.over_time.map((p) => seconds(p.time)));
  const pick = (m, f) => m.over_time.map((p) => [seconds(p.time), f(p)]);
  const series = [{}];
  const lines = [];
  const bands = [];
  models.forEach(([name, m], i) => {
    const color = COLORS[i % COLORS.length];
    const ci = (k) => (p) => p.mae_ratio_ci?.[k] ?? null;
    series.push(
      { label: name, stroke: color, width: 2, spanGaps: true, value: (u, v) => num(ratio, v) },
      { label: `${name} 95% upper`, class: "edge", width: 0, spanGaps: true, points: { show: false } },
      { label: `${name} 95% lower`, class: "edge", width: 0, spanGaps: true, points: { show: false } },
    );
    lines.push(pick(m, (p) => p.mae_ratio), pick(m, ci(1)), pick(m, ci(0)));
    bands.push({ series: [series.length - 2, series.length - 1], fill: color + "33" });
  });
  series.push({ label: "no change", stroke: "#9ca3af", dash: [2, 2], points: { show: false } });
  lines.push(xs.map((x) => [x, 1]));
  draw("skill-chart", { series, bands, legend: { live: false } }, aligned(xs, ...lines));
}

function drawCalibration(skill) {
  const models = Object.entries(skill.models).filter(([, m]) => m.calibration.length);
  const bins = models.map(([, m]) => m.calibration.map((b) => [b.mean_p_up, b.up_share]));
  const series = [
    { label: "P(up)", value: (u, v) => num(percent, v) },
    ...models.map(([name], i) => ({
      label: name,
      stroke: COLORS[i % COLORS.length],
      spanGaps: true,
      points: { size: 8 },
      value: (u, v) => num(percent, v),
    })),
    { label: "perfect", stroke: "#9ca3af", dash: [2, 2], spanGaps: true, points: { show: false } },
  ];
  const axis = { values: (u, ticks) => ticks.map((t) => percent.format(t)) };
  draw(
    "calibration-chart",
    { series, scales: { x: { time: false } }, axes: [axis, { ...axis, size: 55 }] },
    aligned([0, 1, ...bins.flat().map(([x]) => x)], ...bins, [[0, 0], [1, 1]]),
  );
  fillTable(
    "calibration",
    models.flatMap(([name, m]) =>
      m.calibration.map((b) => [name, String(b.n), num(percent, b.mean_p_up), num(percent, b.up_share)]),
    ),
  );
}

function showScorecards(accuracy) {
  fillTable(
    "scorecards",
    Object.entries(accuracy.models).map(([name, s]) => [
      name,
      String(s.n),
      `${num(ratio, s.mase)} ${s.mase_ci ? "[" + range(ratio, s.mase_ci) + "]" : ""}`,
      num(ratio, s.dm_vs_naive),
      num(percent, s.coverage_80),
      num(percent, s.coverage_95),
      `${num(ratio, s.brier)} (${num(ratio, s.brier_base_rate)})`,
    ]),
  );
  const champion = view.predictions.at(-1)?.model;
  const name = champion && `${champion.name}@${champion.version}`;
  const card = accuracy.models[name];
  $("verdict-count").textContent = card ? `${card.n} verdicts of ${name} in ${SCORES_SPAN}` : "";
}

function fact(term, value, className) {
  const dt = document.createElement("dt");
  const dd = document.createElement("dd");
  dt.textContent = term;
  dd.textContent = value;
  if (className) dd.className = className;
  return [dt, dd];
}

function showGate(card) {
  if (!card) {
    $("gate").replaceChildren(...fact("champion", "none serving yet"));
    return;
  }
  const life = card.lifecycle;
  $("gate").replaceChildren(
    ...fact("champion", life?.champion ?? `${card.model.name}@${card.model.version}`),
    ...fact("gate", life?.gate ?? "not decided yet", life && (life.gate === "open" ? "open" : "closed")),
    ...fact("since", when(life?.since)),
    ...fact("pinned", life ? (life.pinned ? "yes" : "no") : "–"),
    ...fact("blocked", life?.blocked.join(", ") || "none"),
    ...fact("held-out test", card.beats_naive ? "beats no change" : "does not beat no change"),
    ...fact("trained on", `${when(card.trained_from)} to ${when(card.trained_to)}`),
  );
}

function showHistory(history) {
  fillTable(
    "history",
    history.data.map((c) => {
      const e = c.evidence;
      const evidence = e
        ? `n ${e.n}, MAE ratio ${num(ratio, e.mae_ratio)}, DM ${num(ratio, e.dm)} vs ${e.against}`
        : "–";
      const model = `${c.model.name}@${c.model.version}`;
      const previous = c.previous ? ` (was ${c.previous.name}@${c.previous.version})` : "";
      return [when(c.decided_at), c.kind, model + previous, c.by, cell(evidence, "wrap"), cell(c.reason, "wrap")];
    }),
  );
}

function showVerdicts() {
  const mark = (flag) => (flag == null ? "–" : flag ? "✓" : "✗");
  fillTable(
    "verdicts",
    view.verdicts.map((v) => [
      when(v.target_time),
      `${v.model.name}@${v.model.version}`,
      v.role ?? "–",
      num(price, v.predicted_close),
      num(price, v.actual_close),
      `${v.error_pct.toFixed(2)}%`,
      `${v.naive_error_pct.toFixed(2)}%`,
      mark(v.direction_correct),
      mark(v.inside_80),
      mark(v.inside_95),
    ]),
  );
}

let scoresReadAt = 0;
async function refreshScores() {
  const symbol = view.symbol;
  scoresReadAt = Date.now();
  const [skill, accuracy, card, history] = await Promise.all([
    api(`skill/${symbol}`),
    api(`accuracy/${symbol}?window=${SCORES_WINDOW}`),
    api(`model/${symbol}`).catch(() => null), // none before the first model card
    api(`models/history?symbol=${symbol}&limit=20`),
  ]);
  if (symbol !== view.symbol) return; // another coin was chosen meanwhile
  drawSkill(skill);
  drawCalibration(skill);
  showScorecards(accuracy);
  showGate(card);
  showHistory(history);
  $("problem").textContent = "";
}

async function load(symbol) {
  view.symbol = symbol;
  const [candles, predictions, verdicts] = await Promise.all([
    api(`candles/${symbol}?limit=${SHOWN_CANDLES}`),
    api(`predictions/${symbol}?limit=${PREDICTIONS_READ}`),
    api(`verifications/${symbol}?limit=${SHOWN_VERDICTS}`),
  ]);
  view.candles = candles.data;
  const start = view.candles.length ? view.candles[0].close_time : "";
  view.predictions = predictions.data.filter((p) => served(p) && p.target_time > start).reverse();
  view.verdicts = verdicts.data;
  drawPrice();
  showVerdicts();
  await refreshScores();
  follow(symbol);
}

// The fan and the verdicts follow the stream at once; the scores (skill, scorecards, gate,
// history) after a verdict, at most once per SCORES_EVERY_MS: one pending refresh covers
// every verdict that arrives before it runs.
let refreshTimer = null;
function scheduleRefresh() {
  if (refreshTimer !== null) return;
  const wait = Math.max(REFRESH_AFTER_MS, scoresReadAt + SCORES_EVERY_MS - Date.now());
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refreshScores().catch(report);
  }, wait);
}

function receive(event) {
  if (event.type === "prediction" && served(event)) {
    view.predictions = [...view.predictions.filter((p) => p.event_id !== event.event_id), event];
    view.predictions.sort((a, b) => a.target_time.localeCompare(b.target_time));
    drawPrice();
  } else if (event.type === "verification") {
    view.verdicts = [event, ...view.verdicts.filter((v) => v.event_id !== event.event_id)];
    view.verdicts.length = Math.min(view.verdicts.length, SHOWN_VERDICTS);
    if (served(event) && !view.candles.some((c) => c.close_time === event.target_time)) {
      // The stream carries no candles: the verdict's actual close is the newest one.
      view.candles = [...view.candles, { close_time: event.target_time, close: event.actual_close }];
      drawPrice();
    }
    showVerdicts();
    scheduleRefresh();
  }
}

function follow(symbol) {
  view.socket?.close();
  const url = new URL(`stream?symbols=${symbol}&models=all`, API);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url);
  view.socket = socket;
  const badge = $("live");
  socket.onopen = () => {
    badge.textContent = "live";
    badge.classList.add("live");
  };
  socket.onmessage = (message) => receive(JSON.parse(message.data));
  socket.onclose = () => {
    if (view.socket !== socket) return; // replaced by another coin's
    badge.textContent = "reconnecting";
    badge.classList.remove("live");
    setTimeout(() => view.socket === socket && follow(symbol), RECONNECT_AFTER_MS);
  };
}

function report(error) {
  $("problem").textContent = String(error.message ?? error);
}

async function start() {
  const { symbols } = await api("symbols");
  const select = $("symbol");
  select.replaceChildren(
    ...symbols.map((s) => {
      const option = document.createElement("option");
      option.value = option.textContent = s;
      return option;
    }),
  );
  const wanted = location.hash.slice(1).toUpperCase();
  select.value = symbols.includes(wanted) ? wanted : symbols[0];
  select.onchange = () => {
    location.hash = select.value;
    load(select.value).catch(report);
  };
  await load(select.value);
}

addEventListener("resize", () => {
  for (const [id, chart] of Object.entries(view.charts)) chart.setSize({ width: $(id).clientWidth, height: 240 });
});
start().catch(report);
