// The cost page: vCPU-hours of the dynamic allocation against a static baseline, and forecast vs actual.

import { TimeChart, legend } from "./charts.js";
import { coalesce, el, fmtNum, followStream, getJson, initialChain, loadChains, rememberChain, sampleMetrics } from "./common.js";
import { costSummary, cumulativeCost, forecastSeries, integrateVcpu, metricSeries, ms, upsert, usedCoresSeries } from "./derive.js";

// A Fargate-like on-demand Linux/x86 price; the operator edits it to match their provider.
const DEFAULT_PRICE = 0.0464;
// The top step of the vCPU ladder: what a static allocation sized for the worst case would hold.
const DEFAULT_BASELINE = 8;
const SAMPLE_GAP_MS = 2 * 60 * 1000;
const PREDICTION_GAP_MS = 10 * 60 * 1000;

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

const state = {
  chain: null,
  minutes: 30,
  vcpu: [],
  usedCores: [],
  predictions: [],
  vcpuFromSamples: false,
  lastVcpu: null,
  stopStream: null,
  generation: 0,
};

const usd = (value) => (value === null || value === undefined ? "–" : `$${value.toFixed(value !== 0 && Math.abs(value) < 1 ? 4 : 2)}`);

function settings() {
  const price = Number.parseFloat($("price-input").value);
  const baseline = Number.parseFloat($("baseline-input").value);
  return {
    price: Number.isFinite(price) && price >= 0 ? price : DEFAULT_PRICE,
    baseline: Number.isFinite(baseline) && baseline > 0 ? baseline : DEFAULT_BASELINE,
  };
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

const allocationSeries = [
  { key: "allocated", label: "allocated vCPU", className: "s1", step: true },
  { key: "baseline", label: "static baseline", className: "s4" },
];
const cumulativeSeries = [
  { key: "used", label: "dynamic allocation", className: "s1" },
  { key: "baseline", label: "static baseline", className: "s4" },
];
const forecastVcpuSeries = [
  { key: "actual", label: "allocated vCPU", className: "s1", step: true },
  { key: "predicted", label: "predicted vCPU (at target time)", className: "s2", step: true },
];
const forecastCoreSeries = [
  { key: "used", label: "cores used", className: "s1" },
  { key: "forecast", label: "forecast (at target time)", className: "s2" },
  { key: "upper", label: "upper bound", className: "s3" },
];

const charts = {};

function makeChart(testid, series) {
  const host = $(testid);
  host.before(legend(series));
  return new TimeChart(host, { series, height: 180, windowMs: 24 * 60 * 60 * 1000, floor: 0, maxGapMs: PREDICTION_GAP_MS });
}

function gapFor() {
  return state.vcpuFromSamples ? SAMPLE_GAP_MS : PREDICTION_GAP_MS;
}

function trimToWindow() {
  const newest = state.vcpu.length ? state.vcpu[state.vcpu.length - 1].t : Date.now();
  const oldest = newest - state.minutes * 60 * 1000;
  state.vcpu = state.vcpu.filter((p) => p.t >= oldest);
  state.usedCores = state.usedCores.filter((p) => p.t >= oldest);
  state.predictions = state.predictions.filter((p) => ms(p.occurredAt) + Number(p.horizonS || 0) * 1000 >= oldest);
}

/** A figure as text for people and, unrounded, as data-value for scripts and tests. */
function show(testid, value, text) {
  const node = $(testid);
  node.textContent = text;
  node.dataset.value = value === null || value === undefined ? "" : String(value);
}

const render = coalesce(() => {
  trimToWindow();
  const { price, baseline } = settings();
  $("price-note").textContent =
    `Priced at $${price} per vCPU-hour (default $${DEFAULT_PRICE}: a Fargate-like on-demand Linux/x86 rate; edit it to match your provider). ` +
    `Baseline: a static ${baseline} vCPU allocation for op-geth. Memory, storage and traffic are not counted.`;
  const used = integrateVcpu(state.vcpu, { maxGapMs: gapFor() });
  const summary = costSummary({ vcpuHours: used.vcpuHours, coveredHours: used.coveredHours, baselineVcpu: baseline, pricePerVcpuHour: price });
  show("cost-vcpu-hours", summary.vcpuHours, fmtNum(summary.vcpuHours, 3));
  show("cost-baseline-hours", summary.baselineVcpuHours, fmtNum(summary.baselineVcpuHours, 3));
  show("cost-used", summary.usedCost, usd(summary.usedCost));
  show("cost-baseline", summary.baselineCost, usd(summary.baselineCost));
  show(
    "cost-savings",
    summary.savings,
    summary.savingsFraction === null ? "–" : `${usd(summary.savings)} (${(summary.savingsFraction * 100).toFixed(1)}%)`,
  );
  show("cost-average", summary.averageVcpu, summary.averageVcpu === null ? "–" : `${fmtNum(summary.averageVcpu, 2)} vCPU`);
  const source = state.vcpuFromSamples ? "the op-geth CPU request in the metric history" : "the current vCPU reported with each prediction";
  $("cost-coverage").textContent =
    summary.coveredHours > 0
      ? `Over ${fmtNum(summary.coveredHours * 60, 1)} minutes of observed allocation (from ${source}); gaps in the data are not counted.`
      : "Not enough allocation data yet: the figures fill in as samples arrive.";
  $("cost-monthly").textContent =
    summary.monthlyUsed === null
      ? ""
      : `At this average, a month (730 h) costs ${usd(summary.monthlyUsed)} against ${usd(summary.monthlyBaseline)} for the static baseline: ${usd(summary.monthlySavings)} saved.`;

  charts.allocation.set("allocated", state.vcpu);
  charts.allocation.set("baseline", state.vcpu.map((p) => ({ t: p.t, v: baseline })));
  const cumulative = cumulativeCost(state.vcpu, { baselineVcpu: baseline, pricePerVcpuHour: price, maxGapMs: gapFor() });
  charts.cumulative.set("used", cumulative.used);
  charts.cumulative.set("baseline", cumulative.baseline);
  const lines = forecastSeries(state.predictions);
  charts.forecastVcpu.set("actual", state.vcpu);
  charts.forecastVcpu.set("predicted", lines.predicted);
  charts.forecastCores.set("used", state.usedCores);
  charts.forecastCores.set("forecast", lines.cores);
  charts.forecastCores.set("upper", lines.upper);
});

async function loadSnapshot(chain, generation) {
  const [history, prediction] = await Promise.all([
    getJson("/api/metrics/history", { chain, minutes: state.minutes }),
    getJson("/api/prediction", { chain, limit: 1000 }),
  ]);
  if (generation !== state.generation) return;
  const failed = [history, prediction].filter((r) => !r.ok);
  showError(failed.length ? `Some data could not be loaded: ${failed.map((r) => r.message).join(" | ")}` : "");
  if (prediction.ok) {
    const entry = (prediction.body.chains || []).find((c) => c.chainId === chain);
    const list = entry ? entry.history || (entry.latest ? [entry.latest] : []) : [];
    state.predictions = [...list].sort((a, b) => ms(a.occurredAt) - ms(b.occurredAt));
  }
  if (history.ok) {
    const points = history.body.points || [];
    const vcpu = metricSeries(points, "vcpu");
    state.vcpuFromSamples = vcpu.length > 0;
    state.vcpu = state.vcpuFromSamples ? vcpu : forecastSeries(state.predictions).current;
    state.usedCores = usedCoresSeries(points);
    state.lastVcpu = state.vcpu.length ? state.vcpu[state.vcpu.length - 1].v : null;
  }
  render();
}

function pushVcpu(t, v) {
  if (state.vcpu.length && state.vcpu[state.vcpu.length - 1].t >= t) return;
  state.vcpu.push({ t, v });
  state.lastVcpu = v;
}

function streamHandlers() {
  return {
    sample: (sample) => {
      const metrics = sampleMetrics(sample);
      const t = ms(sample.at);
      if (metrics.vcpu !== undefined && metrics.vcpu !== null) {
        if (!state.vcpuFromSamples) state.vcpu = [];
        state.vcpuFromSamples = true;
        pushVcpu(t, Number(metrics.vcpu));
      }
      if (metrics.cpuUsage !== undefined && metrics.cpuUsage !== null && state.lastVcpu) {
        state.usedCores.push({ t, v: (Number(metrics.cpuUsage) * state.lastVcpu) / 100 });
      }
      render();
    },
    prediction: (p) => {
      state.predictions = upsert(state.predictions, p, { key: "eventId", limit: 2000 }).reverse();
      if (!state.vcpuFromSamples && p.currentVCpu !== null && p.currentVCpu !== undefined) {
        pushVcpu(ms(p.occurredAt), Number(p.currentVCpu));
      }
      render();
    },
  };
}

async function selectChain(chain) {
  if (state.stopStream) state.stopStream();
  state.generation += 1;
  const generation = state.generation;
  Object.assign(state, { chain, vcpu: [], usedCores: [], predictions: [], vcpuFromSamples: false, lastVcpu: null });
  rememberChain(chain);
  setStreamStatus("connecting");
  state.stopStream = followStream(chain, streamHandlers(), {
    onStatus: setStreamStatus,
    onResync: () => loadSnapshot(chain, generation),
  });
  await loadSnapshot(chain, generation);
}

function setupSettings() {
  const price = $("price-input");
  const baseline = $("baseline-input");
  const windowSelect = $("window-select");
  price.value = window.localStorage.getItem("sentinai.price") || String(DEFAULT_PRICE);
  baseline.value = window.localStorage.getItem("sentinai.baselineVcpu") || String(DEFAULT_BASELINE);
  windowSelect.value = window.localStorage.getItem("sentinai.costWindow") || "30";
  state.minutes = Number(windowSelect.value) || 30;
  price.addEventListener("input", () => {
    window.localStorage.setItem("sentinai.price", price.value);
    render();
  });
  baseline.addEventListener("input", () => {
    window.localStorage.setItem("sentinai.baselineVcpu", baseline.value);
    render();
  });
  windowSelect.addEventListener("change", () => {
    window.localStorage.setItem("sentinai.costWindow", windowSelect.value);
    state.minutes = Number(windowSelect.value) || 30;
    if (state.chain) loadSnapshot(state.chain, state.generation);
  });
  $("cost-settings").addEventListener("submit", (event) => event.preventDefault());
}

async function start() {
  charts.allocation = makeChart("chart-allocation", allocationSeries);
  charts.cumulative = makeChart("chart-cumulative", cumulativeSeries);
  charts.forecastVcpu = makeChart("chart-forecast-vcpu", forecastVcpuSeries);
  charts.forecastCores = makeChart("chart-forecast-cores", forecastCoreSeries);
  setupSettings();
  render();
  const select = $("chain-select");
  select.addEventListener("change", () => selectChain(select.value));
  let ids = [];
  for (;;) {
    const { chains, message } = await loadChains();
    ids = chains.map((c) => c.chainId);
    select.replaceChildren(...ids.map((id) => el("option", { text: id, attrs: { value: id } })));
    if (ids.length) break;
    showError(message || "No chain has reported yet; waiting for the first sample…");
    setStreamStatus("waiting");
    await new Promise((resolve) => window.setTimeout(resolve, 3000));
  }
  showError("");
  const chain = initialChain(ids);
  select.value = chain;
  await selectChain(chain);
}

start();
