// Pure data shaping for both pages: API payloads in, chart series and cost figures out (no DOM, no clock).

export const HOURS_PER_MONTH = 730;

/** ISO time → epoch ms (NaN when absent or unreadable). */
export function ms(iso) {
  return iso ? Date.parse(iso) : NaN;
}

/** One metric of /api/metrics/history points as chart points [{t, v}], nulls dropped. */
export function metricSeries(points, name) {
  const out = [];
  for (const p of points || []) {
    const v = p[name];
    if (v === null || v === undefined) continue;
    out.push({ t: ms(p.at), v: Number(v) });
  }
  return out;
}

/** Cores actually used: cpuUsage is a percent of the CPU request, so used = pct × request / 100. */
export function usedCoresSeries(points) {
  const out = [];
  for (const p of points || []) {
    if (p.cpuUsage === null || p.cpuUsage === undefined || !p.vcpu) continue;
    out.push({ t: ms(p.at), v: (Number(p.cpuUsage) * Number(p.vcpu)) / 100 });
  }
  return out;
}

/**
 * Forecast lines from predictions, each placed at the time it is a forecast for (made at + horizon),
 * so it can be read against what actually happened then.
 */
export function forecastSeries(predictions) {
  const predicted = [];
  const cores = [];
  const upper = [];
  const current = [];
  for (const p of predictions || []) {
    const made = ms(p.occurredAt);
    const target = made + Number(p.horizonS || 0) * 1000;
    if (p.predictedVCpu !== null && p.predictedVCpu !== undefined) predicted.push({ t: target, v: Number(p.predictedVCpu) });
    if (p.forecastCores !== null && p.forecastCores !== undefined) cores.push({ t: target, v: Number(p.forecastCores) });
    if (p.upperBoundCores !== null && p.upperBoundCores !== undefined) upper.push({ t: target, v: Number(p.upperBoundCores) });
    if (p.currentVCpu !== null && p.currentVCpu !== undefined) current.push({ t: made, v: Number(p.currentVCpu) });
  }
  const byTime = (a, b) => a.t - b.t;
  return { predicted: predicted.sort(byTime), cores: cores.sort(byTime), upper: upper.sort(byTime), current: current.sort(byTime) };
}

/**
 * vCPU-hours of a step series [{t, v}] (each value held until the next point). Stretches longer
 * than `maxGapMs` are gaps in what we know and count neither as used nor as covered time.
 */
export function integrateVcpu(points, { maxGapMs = 120000 } = {}) {
  const sorted = points.filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v)).sort((a, b) => a.t - b.t);
  let vcpuMs = 0;
  let coveredMs = 0;
  for (let i = 0; i + 1 < sorted.length; i += 1) {
    const dt = sorted[i + 1].t - sorted[i].t;
    if (dt <= 0 || dt > maxGapMs) continue;
    vcpuMs += sorted[i].v * dt;
    coveredMs += dt;
  }
  const vcpuHours = vcpuMs / 3.6e6;
  const coveredHours = coveredMs / 3.6e6;
  return { vcpuHours, coveredHours, averageVcpu: coveredHours > 0 ? vcpuHours / coveredHours : null };
}

/** What the observed allocation cost against a static allocation of `baselineVcpu` over the same time. */
export function costSummary({ vcpuHours, coveredHours, baselineVcpu, pricePerVcpuHour }) {
  const baselineVcpuHours = baselineVcpu * coveredHours;
  const usedCost = vcpuHours * pricePerVcpuHour;
  const baselineCost = baselineVcpuHours * pricePerVcpuHour;
  const averageVcpu = coveredHours > 0 ? vcpuHours / coveredHours : null;
  const monthlyUsed = averageVcpu === null ? null : averageVcpu * HOURS_PER_MONTH * pricePerVcpuHour;
  const monthlyBaseline = baselineVcpu * HOURS_PER_MONTH * pricePerVcpuHour;
  return {
    vcpuHours,
    coveredHours,
    averageVcpu,
    baselineVcpuHours,
    usedCost,
    baselineCost,
    savedVcpuHours: baselineVcpuHours - vcpuHours,
    savings: baselineCost - usedCost,
    savingsFraction: baselineVcpuHours > 0 ? 1 - vcpuHours / baselineVcpuHours : null,
    monthlyUsed,
    monthlyBaseline,
    monthlySavings: monthlyUsed === null ? null : monthlyBaseline - monthlyUsed,
  };
}

/** Running cost in USD of the observed allocation and of the baseline, for a chart. */
export function cumulativeCost(points, { baselineVcpu, pricePerVcpuHour, maxGapMs = 120000 }) {
  const sorted = points.filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v)).sort((a, b) => a.t - b.t);
  const used = [];
  const baseline = [];
  let usedSum = 0;
  let baseSum = 0;
  for (let i = 0; i < sorted.length; i += 1) {
    if (i > 0) {
      const dt = sorted[i].t - sorted[i - 1].t;
      if (dt > 0 && dt <= maxGapMs) {
        usedSum += (sorted[i - 1].v * dt * pricePerVcpuHour) / 3.6e6;
        baseSum += (baselineVcpu * dt * pricePerVcpuHour) / 3.6e6;
      }
    }
    used.push({ t: sorted[i].t, v: usedSum });
    baseline.push({ t: sorted[i].t, v: baseSum });
  }
  return { used, baseline };
}

/** Insert or replace an item in a list by a key, newest (by `timeKey`) first, at most `limit` kept. */
export function upsert(list, item, { key, timeKey = "occurredAt", limit = 200 }) {
  const rest = list.filter((x) => x[key] !== item[key]);
  rest.push(item);
  rest.sort((a, b) => (ms(b[timeKey]) || 0) - (ms(a[timeKey]) || 0));
  return rest.slice(0, limit);
}

export const PENDING = "pending_approval";

/** Split action views into those waiting for a person and the rest (history), newest first. */
export function splitActions(actions) {
  const byNewest = (a, b) => (ms(b.proposedAt) || 0) - (ms(a.proposedAt) || 0);
  const pending = actions.filter((a) => a.status === PENDING).sort(byNewest);
  const history = actions.filter((a) => a.status !== PENDING).sort(byNewest);
  return { pending, history };
}

/** Mark the anomaly of an episode resolved, from an `anomaly_resolved` event or a resolved view. */
export function resolveAnomaly(anomalies, resolved) {
  return anomalies.map((a) =>
    a.episodeId === resolved.episodeId
      ? { ...a, active: false, resolvedAt: resolved.resolvedAt || resolved.occurredAt || a.resolvedAt }
      : a,
  );
}
