// The operations page: live chain metrics, alerts, RCA, prediction, approvals, history and audit for one chain.

import { TimeChart, legend } from "./charts.js";
import {
  el,
  fill,
  fmtDateTime,
  fmtNum,
  fmtPercent,
  fmtTime,
  followStream,
  getJson,
  initialChain,
  loadChains,
  postJson,
  sampleMetrics,
  rememberChain,
  verdictMessage,
} from "./common.js";
import {
  PENDING,
  forecastSeries,
  metricSeries,
  ms,
  resolveAnomaly,
  splitActions,
  upsert,
  usedCoresSeries,
} from "./derive.js";

const WINDOW_MS = 30 * 60 * 1000;
const KEY_STORE = "sentinai.apiKey";

// The seed's five headline metrics, then the two sync lags.
const METRICS = [
  { name: "blockHeight", title: "Block height", unit: "", digits: 0 },
  { name: "cpuUsage", title: "CPU usage", unit: "%", digits: 1, floor: 0 },
  { name: "txPoolCount", title: "Tx pool", unit: " txs", digits: 0, floor: 0 },
  { name: "gasUsedRatio", title: "Gas used ratio", unit: "", digits: 3, floor: 0 },
  { name: "blockInterval", title: "Block interval", unit: " s", digits: 2, floor: 0 },
  { name: "unsafeSafeLag", title: "Unsafe–safe lag", unit: " blocks", digits: 0, floor: 0 },
  { name: "l1HeadAge", title: "L1 head age", unit: " s", digits: 1, floor: 0 },
];

const ACTIVE_SHOWN = 6;
const SEVERITY_RANK = { critical: 4, high: 3, medium: 2, low: 1 };
// Anomalies marked on a chart: of the components the chart shows, on its metric or the same symptom.
const CHAIN_COMPONENTS = ["op-geth", "op-node"];
const MARKED_BY = {
  blockHeight: { metrics: ["blockHeight", "secondsSinceHead", "blockRate", "unsafeL2Age", "log:sequencer_stall"] },
  txPoolCount: { metrics: ["txPoolCount", "txPoolQueued"] },
  cpuUsage: { metrics: ["cpuUsage", "cpuCores"], components: ["op-geth"] },
};

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

const state = {
  chain: null,
  anomalies: [],
  rcas: [],
  predictions: [],
  actions: new Map(),
  audit: [],
  lastSampleAt: null,
  vcpu: null,
  vcpuFromSamples: false,
  stopStream: null,
  generation: 0,
  // From /api/health: in read-only mode the page offers no way to write.
  readOnly: false,
};

const charts = new Map();
const values = new Map();
let vcpuChart = null;
let coresChart = null;

function buildCharts() {
  const grid = $("charts");
  for (const m of METRICS) {
    const value = el("span", { cls: "metric-value", testid: `metric-value-${m.name}`, text: "–" });
    const plot = el("div", { testid: `chart-${m.name}` });
    grid.append(el("figure", { cls: "chart-box metric" }, el("figcaption", {}, el("span", { text: m.title }), value), plot));
    charts.set(m.name, new TimeChart(plot, { series: [{ key: "v", label: m.title, className: "s1" }], windowMs: WINDOW_MS, floor: m.floor ?? null }));
    values.set(m.name, value);
  }
  const vcpuSeries = [
    { key: "actual", label: "allocated vCPU", className: "s1", step: true },
    { key: "predicted", label: "predicted vCPU (at target time)", className: "s2", step: true },
  ];
  const coreSeries = [
    { key: "used", label: "cores used", className: "s1" },
    { key: "forecast", label: "forecast (at target time)", className: "s2" },
    { key: "upper", label: "upper bound", className: "s3" },
  ];
  const vcpuHost = $("chart-prediction-vcpu");
  const coresHost = $("chart-prediction-cores");
  vcpuHost.before(legend(vcpuSeries));
  coresHost.before(legend(coreSeries));
  vcpuChart = new TimeChart(vcpuHost, { series: vcpuSeries, windowMs: WINDOW_MS, floor: 0, maxGapMs: 10 * 60 * 1000 });
  coresChart = new TimeChart(coresHost, { series: coreSeries, windowMs: WINDOW_MS, floor: 0, maxGapMs: 10 * 60 * 1000 });
}

function showError(message) {
  const banner = $("page-error");
  banner.textContent = message || "";
  banner.hidden = !message;
}

function setStreamStatus(status) {
  const badge = $("stream-status");
  badge.dataset.state = status;
  badge.textContent = status;
}

function showMetricValue(name, value) {
  const spec = METRICS.find((m) => m.name === name);
  values.get(name).textContent = value === null || value === undefined ? "–" : `${fmtNum(value, spec.digits)}${spec.unit}`;
}

function showFreshness() {
  const at = state.lastSampleAt;
  $("freshness").textContent = at ? `Chain ${state.chain} · last sample ${fmtTime(at)}` : `Chain ${state.chain} · no samples yet`;
}

// ---------------------------------------------------------------- metrics

function applyHistory(points) {
  for (const m of METRICS) {
    const series = metricSeries(points, m.name);
    charts.get(m.name).set("v", series);
    showMetricValue(m.name, series.length ? series[series.length - 1].v : null);
  }
  const vcpu = metricSeries(points, "vcpu");
  state.vcpuFromSamples = vcpu.length > 0;
  state.vcpu = vcpu.length ? vcpu[vcpu.length - 1].v : null;
  vcpuChart.set("actual", vcpu);
  coresChart.set("used", usedCoresSeries(points));
  if (points.length) state.lastSampleAt = points[points.length - 1].at;
  showFreshness();
}

function onSample(sample) {
  const t = ms(sample.at);
  const metrics = sampleMetrics(sample);
  for (const m of METRICS) {
    if (metrics[m.name] === undefined || metrics[m.name] === null) continue;
    charts.get(m.name).push("v", t, Number(metrics[m.name]));
    showMetricValue(m.name, metrics[m.name]);
  }
  if (metrics.vcpu !== undefined && metrics.vcpu !== null) {
    state.vcpu = Number(metrics.vcpu);
    state.vcpuFromSamples = true;
    vcpuChart.push("actual", t, state.vcpu);
  }
  if (metrics.cpuUsage !== undefined && metrics.cpuUsage !== null && state.vcpu) {
    coresChart.push("used", t, (Number(metrics.cpuUsage) * state.vcpu) / 100);
  }
  state.lastSampleAt = sample.at;
  showFreshness();
}

// ---------------------------------------------------------------- anomalies

function anomalyCard(a, { prominent }) {
  const card = el(
    "article",
    { cls: `alert sev-${a.severity || "low"}${prominent ? " active" : ""}`, testid: prominent ? "alert" : "past-anomaly", attrs: { "data-episode-id": a.episodeId, "data-severity": a.severity } },
    el("div", { cls: "alert-head" }, el("span", { cls: "badge", text: a.severity || "?" }), el("span", { cls: "where", text: `${a.component || ""} · ${a.metric || ""}` }), el("time", { text: fmtTime(a.occurredAt), attrs: { datetime: a.occurredAt } })),
    el("p", { cls: "alert-text", testid: "alert-description", text: a.description }),
  );
  const facts = [`value ${fmtNum(a.value)}`];
  if (a.zScore !== null && a.zScore !== undefined && (a.rule === "zscore" || a.rule === "streaming")) facts.push(`z ${fmtNum(a.zScore, 1)}`);
  if (a.rule) facts.push(`rule ${a.rule}`);
  if (!a.active && a.resolvedAt) facts.push(`resolved ${fmtTime(a.resolvedAt)}`);
  card.append(el("p", { cls: "facts", text: facts.join(" · ") }));
  if (prominent && a.evidence && a.evidence.length) {
    card.append(el("ul", { cls: "evidence" }, ...a.evidence.slice(0, 4).map((line) => el("li", { text: line }))));
  }
  return card;
}

function renderAnomalies() {
  const active = activeFirst(state.anomalies.filter((a) => a.active !== false));
  const past = state.anomalies.filter((a) => a.active === false);
  const shown = active.slice(0, ACTIVE_SHOWN).map((a) => anomalyCard(a, { prominent: true }));
  if (active.length > ACTIVE_SHOWN) {
    const more = active.slice(ACTIVE_SHOWN).map((a) => anomalyCard(a, { prominent: true }));
    shown.push(el("details", { cls: "recent" }, el("summary", { text: `${more.length} more active` }), el("div", { cls: "stack" }, ...more)));
  }
  fill($("active-alerts"), shown, "No active alerts.");
  fill($("anomaly-history"), past.slice(0, 30).map((a) => anomalyCard(a, { prominent: false })), "Nothing resolved yet.");
  $("active-count").textContent = String(active.length);
  $("alerts-panel").classList.toggle("firing", active.length > 0);
  for (const m of METRICS) {
    const { metrics = [m.name], components = CHAIN_COMPONENTS } = MARKED_BY[m.name] || {};
    const marks = state.anomalies.filter((a) => metrics.includes(a.metric) && components.includes(a.component));
    charts.get(m.name).setMarkers(marks.map((a) => ({ t: ms(a.occurredAt), label: a.description })));
  }
}

/** Worst first, then newest: what an operator should read first. */
function activeFirst(anomalies) {
  return [...anomalies].sort((a, b) => (SEVERITY_RANK[b.severity] ?? 0) - (SEVERITY_RANK[a.severity] ?? 0) || ms(b.occurredAt) - ms(a.occurredAt));
}

// ---------------------------------------------------------------- RCA

function rcaCard(r) {
  const hypotheses = (r.hypotheses || []).map((h) =>
    el(
      "li",
      { cls: "hypothesis" },
      el("div", { cls: "hyp-head" }, el("span", { cls: "hyp-cause", text: h.cause }), el("span", { cls: "hyp-score", text: fmtPercent(h.score) })),
      el("div", { cls: "bar", attrs: { role: "presentation" } }, el("span", { attrs: { style: `width:${Math.max(0, Math.min(100, Number(h.score) * 100)).toFixed(0)}%` } })),
      el("p", { cls: "hyp-summary", text: h.summary }),
    ),
  );
  return el(
    "article",
    { cls: `rca risk-${r.riskLevel || "low"}`, testid: "rca-card", attrs: { "data-event-id": r.eventId, "data-episode-id": r.episodeId } },
    el(
      "div",
      { cls: "rca-head" },
      el("span", { cls: "badge class", testid: "rca-class", text: r.rootCauseClass }),
      el("span", { cls: "confidence", testid: "rca-confidence", text: `confidence ${fmtPercent(r.confidence)}` }),
      el("span", { cls: "badge", text: `risk ${r.riskLevel}` }),
      el("time", { text: fmtTime(r.occurredAt), attrs: { datetime: r.occurredAt } }),
    ),
    el("p", { cls: "root-cause", testid: "rca-root-cause", text: r.rootCause }),
    r.corroboration
      ? el("p", {
          cls: `corroboration ${r.corroboration.proposalMet ? "met" : "waiting"}`,
          testid: "rca-corroboration",
          text: r.corroboration.proposalMet ? `Evidence ${r.corroboration.status}` : `No action yet: ${r.corroboration.status}`,
        })
      : null,
    r.actionPlan ? el("p", { cls: "plan", text: `Plan: ${r.actionPlan}` }) : null,
    el("p", { cls: "facts", text: `components ${(r.affectedComponents || []).join(", ") || "–"} · engine ${r.engine}${r.latencyMs !== undefined ? ` · ${fmtNum(r.latencyMs, 0)} ms` : ""}` }),
    hypotheses.length ? el("details", { cls: "hyps", attrs: { open: "" } }, el("summary", { text: `Hypotheses (${hypotheses.length})` }), el("ol", { testid: "rca-hypotheses" }, ...hypotheses)) : null,
    (r.evidence || []).length ? el("details", { cls: "evid", attrs: { open: "" } }, el("summary", { text: `Evidence (${r.evidence.length})` }), el("ul", { cls: "evidence", testid: "rca-evidence" }, ...r.evidence.map((line) => el("li", { text: line })))) : null,
  );
}

function renderRcas() {
  fill($("rca-list"), state.rcas.slice(0, 10).map(rcaCard), "No diagnosis yet: one appears when an anomaly is analysed.");
}

// ---------------------------------------------------------------- prediction

function renderPrediction() {
  const latest = state.predictions.length ? state.predictions[state.predictions.length - 1] : null;
  const box = $("prediction-summary");
  if (!latest) {
    box.replaceChildren(el("p", { cls: "empty", text: "No prediction yet." }));
  } else {
    box.replaceChildren(
      el(
        "div",
        { cls: "pred-figures" },
        figure("predicted", `${fmtNum(latest.predictedVCpu)} vCPU`, "prediction-vcpu"),
        figure("allocated now", latest.currentVCpu === null || latest.currentVCpu === undefined ? "–" : `${fmtNum(latest.currentVCpu)} vCPU`, "prediction-current"),
        figure("trend", latest.trend, "prediction-trend"),
        figure("confidence", `${fmtNum(latest.confidence, 0)}%`, "prediction-confidence"),
        figure("horizon", `${fmtNum(latest.horizonS / 60, 1)} min`, null),
      ),
      el("p", { cls: "reasoning", text: latest.reasoning }),
      (latest.keyFactors || []).length ? el("ul", { cls: "factors" }, ...latest.keyFactors.map((f) => el("li", { text: f }))) : null,
      el("p", { cls: "facts", text: `model ${latest.model} · made ${fmtTime(latest.occurredAt)}` }),
    );
  }
  const lines = forecastSeries(state.predictions);
  vcpuChart.set("predicted", lines.predicted);
  if (!state.vcpuFromSamples) vcpuChart.set("actual", lines.current);
  coresChart.set("forecast", lines.cores);
  coresChart.set("upper", lines.upper);
}

function figure(label, value, testid) {
  return el("div", { cls: "figure" }, el("span", { cls: "label", text: label }), el("span", { cls: "value", testid, text: value }));
}

// ---------------------------------------------------------------- actions

function apiKey() {
  return window.sessionStorage.getItem(KEY_STORE) || "";
}

function describeApprovals(a) {
  const got = (a.approvals || []).length;
  const names = (a.approvals || []).map((x) => x.by).join(", ");
  return `approvals ${got}/${a.approvalsRequired ?? "?"}${names ? ` (${names})` : ""}`;
}

async function decide(actionId, command, card) {
  const message = card.querySelector('[data-testid="action-message"]');
  const reason = card.querySelector('[data-testid="action-reason"]').value.trim();
  const buttons = card.querySelectorAll("button");
  buttons.forEach((b) => {
    b.disabled = true;
  });
  message.className = "action-message";
  message.textContent = `${command === "approve" ? "Approving" : "Rejecting"}…`;
  // No name is sent: the api records the key's owner as the one who decided.
  const result = await postJson(`/api/actions/${encodeURIComponent(actionId)}/${command}`, { reason }, { apiKey: apiKey() });
  buttons.forEach((b) => {
    b.disabled = false;
  });
  const { tone, text } = verdictMessage(command, result);
  message.className = `action-message ${tone}`;
  message.textContent = text;
  if (result.status === 403 && result.message.includes("read-only")) applyMode({ readOnly: true });
  // The stream normally brings the new status; a re-read covers a stream that is reconnecting.
  if (result.ok || result.status === 409) window.setTimeout(() => refreshActions(state.generation), result.ok ? 2000 : 0);
}

function pendingCard(a) {
  const card = el("article", { cls: `action pending tier-${a.tier}`, testid: "pending-action", attrs: { "data-action-id": a.actionId } });
  const reason = el("input", { testid: "action-reason", attrs: { type: "text", placeholder: "reason (optional)", maxlength: 2000, "aria-label": "reason" } });
  card.append(
    el("div", { cls: "action-head" }, el("span", { cls: "badge", text: `${a.tier} tier` }), el("span", { cls: "summary", testid: "action-summary", text: a.summary })),
    el("p", { cls: "reason", text: a.reason }),
    el("p", { cls: "facts", testid: "action-approvals" }),
    el("p", { cls: "refusal", testid: "action-refusal", attrs: { hidden: "" } }),
  );
  // Read-only mode: the card says what waits, with no controls that could only be refused.
  if (state.readOnly) return card;
  const approve = el("button", { cls: "approve", testid: "approve-button", text: "Approve", attrs: { type: "button" } });
  const reject = el("button", { cls: "reject", testid: "reject-button", text: "Reject", attrs: { type: "button" } });
  approve.addEventListener("click", () => decide(a.actionId, "approve", card));
  reject.addEventListener("click", () => decide(a.actionId, "reject", card));
  card.append(
    el("div", { cls: "decide" }, reason, approve, reject),
    el("p", { cls: "action-message", testid: "action-message", attrs: { role: "status", "aria-live": "polite" } }),
  );
  return card;
}

function updatePendingCard(card, a) {
  card.querySelector('[data-testid="action-approvals"]').textContent =
    `${describeApprovals(a)} · proposed by ${a.proposedBy} ${fmtTime(a.proposedAt)} · expires ${fmtTime(a.expiresAt)}`;
  const refusal = card.querySelector('[data-testid="action-refusal"]');
  refusal.textContent = a.refusal ? `Last refused: ${a.refusal}` : "";
  refusal.hidden = !a.refusal;
}

function historyItem(a) {
  const dryRun = a.outcome && a.outcome.dryRun && a.outcome.outcome !== "dry_run" ? " (dry run)" : "";
  const outcome = a.outcome ? `${a.outcome.outcome.replaceAll("_", " ")}${dryRun}: ${a.outcome.detail}` : null;
  return el(
    "article",
    { cls: `action done status-${a.status}`, testid: "history-action", attrs: { "data-action-id": a.actionId, "data-status": a.status } },
    el("div", { cls: "action-head" }, el("span", { cls: "badge status", testid: "history-status", text: a.status.replaceAll("_", " ") }), el("span", { cls: "summary", text: a.summary }), el("time", { text: fmtTime(a.proposedAt), attrs: { datetime: a.proposedAt } })),
    el("p", { cls: "facts", text: `${a.tier} tier · ${describeApprovals(a)} · by ${a.proposedBy}` }),
    a.refusal ? el("p", { cls: "refusal", testid: "action-refusal", text: `refused: ${a.refusal}` }) : null,
    outcome ? el("p", { cls: "outcome", text: outcome }) : null,
  );
}

function renderActions() {
  const { pending, history } = splitActions([...state.actions.values()]);
  const box = $("pending-approvals");
  const cards = new Map([...box.querySelectorAll('[data-testid="pending-action"]')].map((c) => [c.dataset.actionId, c]));
  // Cards are kept across updates so a half-typed reason or a shown error survives a stream event.
  const ordered = pending.map((a) => {
    const card = cards.get(a.actionId) || pendingCard(a);
    updatePendingCard(card, a);
    return card;
  });
  fill(box, ordered, "Nothing waits for approval.");
  $("pending-count").textContent = String(pending.length);
  $("approvals-panel").classList.toggle("waiting", pending.length > 0);
  fill($("action-history"), history.slice(0, 50).map(historyItem), "No actions yet.");
}

function onAction(view) {
  state.actions.set(view.actionId, view);
  renderActions();
}

async function refreshActions(generation) {
  const result = await getJson("/api/actions", { chain: state.chain, status: "all", limit: 200 });
  if (generation !== state.generation || !result.ok) return;
  state.actions = new Map((result.body.actions || []).map((a) => [a.actionId, a]));
  renderActions();
}

// ---------------------------------------------------------------- audit

function auditItem(r) {
  return el(
    "li",
    { cls: `audit-${r.kind}`, testid: "audit-item", attrs: { "data-event-id": r.eventId } },
    el("div", { cls: "audit-head" }, el("time", { text: fmtDateTime(r.occurredAt), attrs: { datetime: r.occurredAt } }), el("span", { cls: "badge", text: r.kind }), el("span", { cls: "actor", text: r.actor })),
    el("p", { cls: "summary", text: r.summary }),
    r.reasoning ? el("p", { cls: "facts", text: r.reasoning }) : null,
    r.outcome ? el("p", { cls: "facts", text: `outcome: ${r.outcome}` }) : null,
  );
}

function renderAudit() {
  fill($("audit-trail"), state.audit.slice(0, 100).map(auditItem), "The audit trail is empty.");
}

// ---------------------------------------------------------------- loading and switching chains

async function loadSnapshot(chain, generation) {
  const [history, anomalies, rca, prediction, actions, audit] = await Promise.all([
    getJson("/api/metrics/history", { chain, minutes: 30 }),
    getJson("/api/anomalies", { chain, limit: 100 }),
    getJson("/api/rca", { chain, limit: 20 }),
    getJson("/api/prediction", { chain, limit: 120 }),
    getJson("/api/actions", { chain, status: "all", limit: 200 }),
    getJson("/api/audit", { chain, limit: 100 }),
  ]);
  if (generation !== state.generation) return;
  const failed = [history, anomalies, rca, prediction, actions, audit].filter((r) => !r.ok);
  showError(failed.length ? `Some data could not be loaded: ${failed.map((r) => r.message).join(" | ")}` : "");
  if (history.ok) applyHistory(history.body.points || []);
  if (anomalies.ok) state.anomalies = anomalies.body.anomalies || [];
  if (rca.ok) state.rcas = rca.body.items || (rca.body.latest ? [rca.body.latest] : []);
  if (prediction.ok) {
    const entry = (prediction.body.chains || []).find((c) => c.chainId === chain);
    const list = entry ? entry.history || (entry.latest ? [entry.latest] : []) : [];
    state.predictions = [...list].sort((a, b) => ms(a.occurredAt) - ms(b.occurredAt));
  }
  if (actions.ok) state.actions = new Map((actions.body.actions || []).map((a) => [a.actionId, a]));
  if (audit.ok) state.audit = audit.body.items || [];
  renderAnomalies();
  renderRcas();
  renderPrediction();
  renderActions();
  renderAudit();
}

// The picker's per-chain alert and approval counts follow the stream, at most once a second.
let pickerTimer = null;
function refreshPickerSoon() {
  if (pickerTimer !== null) return;
  pickerTimer = window.setTimeout(() => {
    pickerTimer = null;
    fillChainPicker();
  }, 1000);
}

function streamHandlers() {
  return {
    sample: onSample,
    anomaly: (a) => {
      state.anomalies = upsert(state.anomalies, { active: true, chain: a.chainId, ...a }, { key: "episodeId" });
      renderAnomalies();
      refreshPickerSoon();
    },
    anomaly_resolved: (r) => {
      state.anomalies = resolveAnomaly(state.anomalies, r);
      renderAnomalies();
      refreshPickerSoon();
    },
    rca: (r) => {
      state.rcas = upsert(state.rcas, r, { key: "eventId", limit: 20 });
      renderRcas();
    },
    prediction: (p) => {
      state.predictions = upsert(state.predictions, p, { key: "eventId", limit: 240 }).reverse();
      renderPrediction();
    },
    action: (view) => {
      onAction(view);
      refreshPickerSoon();
    },
    audit: (r) => {
      state.audit = upsert(state.audit, r, { key: "eventId", limit: 200 });
      renderAudit();
    },
  };
}

async function selectChain(chain) {
  if (state.stopStream) state.stopStream();
  state.generation += 1;
  const generation = state.generation;
  Object.assign(state, { chain, anomalies: [], rcas: [], predictions: [], actions: new Map(), audit: [], lastSampleAt: null, vcpu: null, vcpuFromSamples: false });
  rememberChain(chain);
  $("audit-csv").href = `/api/audit?format=csv&chain=${encodeURIComponent(chain)}`;
  setStreamStatus("connecting");
  // Subscribe before reading the snapshot so nothing published in between is lost (duplicates are merged).
  state.stopStream = followStream(chain, streamHandlers(), {
    onStatus: setStreamStatus,
    onResync: () => loadSnapshot(chain, generation),
  });
  await loadSnapshot(chain, generation);
}

function showKeyState() {
  $("api-key-state").textContent = apiKey()
    ? "Key set for this tab (sessionStorage only; closing the tab forgets it)."
    : "No key set: approvals will be refused. The key stays in this tab only.";
}

/** Apply /api/health's modes: read-only shows the banner and removes every way to write. */
function applyMode({ readOnly }) {
  const changed = Boolean(readOnly) !== state.readOnly;
  state.readOnly = Boolean(readOnly);
  $("read-only-banner").hidden = !state.readOnly;
  $("key-form").hidden = state.readOnly;
  if (changed) {
    // Pending cards are reused across renders; rebuild them with or without their controls.
    $("pending-approvals").replaceChildren();
    renderActions();
  }
}

async function loadMode() {
  const health = await getJson("/api/health");
  // /api/health answers 503 with the same body when NATS is down: the modes still hold.
  const body = health.body && typeof health.body === "object" ? health.body : null;
  if (body && "readOnly" in body) applyMode(body);
}

function setupKeyForm() {
  const keyInput = $("api-key-input");
  keyInput.value = window.sessionStorage.getItem(KEY_STORE) || "";
  keyInput.addEventListener("input", () => {
    const value = keyInput.value.trim();
    if (value) window.sessionStorage.setItem(KEY_STORE, value);
    else window.sessionStorage.removeItem(KEY_STORE);
    showKeyState();
  });
  $("forget-key").addEventListener("click", () => {
    keyInput.value = "";
    window.sessionStorage.removeItem(KEY_STORE);
    showKeyState();
  });
  $("key-form").addEventListener("submit", (event) => event.preventDefault());
  showKeyState();
}

async function fillChainPicker() {
  const select = $("chain-select");
  const { chains, message } = await loadChains();
  const ids = chains.map((c) => c.chainId);
  const current = select.value;
  select.replaceChildren(
    ...chains.map((c) => {
      const alerts = c.activeAnomalies ? ` · ${c.activeAnomalies} alert${c.activeAnomalies === 1 ? "" : "s"}` : "";
      const pending = c.pendingApprovals ? ` · ${c.pendingApprovals} pending` : "";
      return el("option", { text: `${c.chainId}${c.fresh === false ? " (stale)" : ""}${alerts}${pending}`, attrs: { value: c.chainId } });
    }),
  );
  if (current && ids.includes(current)) select.value = current;
  return { ids, message };
}

async function start() {
  buildCharts();
  setupKeyForm();
  await loadMode();
  const select = $("chain-select");
  select.addEventListener("change", () => selectChain(select.value));
  let { ids, message } = await fillChainPicker();
  while (ids.length === 0) {
    showError(message || "No chain has reported yet; waiting for the first sample…");
    setStreamStatus("waiting");
    await new Promise((resolve) => window.setTimeout(resolve, 3000));
    ({ ids, message } = await fillChainPicker());
  }
  showError("");
  const chain = initialChain(ids);
  select.value = chain;
  await selectChain(chain);
  // New chains and the per-chain alert counts in the picker are refreshed now and then.
  window.setInterval(() => {
    fillChainPicker();
    loadMode();
  }, 30000);
}

start();
