// Small SVG time-series charts drawn by hand: scales, ticks, paths and a chart that redraws on data or resize.

const SVG_NS = "http://www.w3.org/2000/svg";

/** A linear map from a domain interval onto a range interval (a flat domain maps to the range's middle). */
export function scaleLinear([d0, d1], [r0, r1]) {
  const span = d1 - d0;
  if (span === 0) return () => (r0 + r1) / 2;
  return (value) => r0 + ((value - d0) / span) * (r1 - r0);
}

/** Round tick values covering [min, max] in steps of 1, 2 or 5 times a power of ten. */
export function niceTicks(min, max, count = 4) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) return [min];
  const raw = (max - min) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const ratio = raw / power;
  const step = (ratio < 1.5 ? 1 : ratio < 3 ? 2 : ratio < 7 ? 5 : 10) * power;
  const ticks = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) {
    ticks.push(Number(v.toPrecision(12)));
  }
  return ticks;
}

/** The y interval to draw: the values' extent, widened a little, always including `floor` when given. */
export function valueDomain(values, { floor = null, ceiling = null } = {}) {
  const finite = values.filter(Number.isFinite);
  let lo = finite.length ? Math.min(...finite) : 0;
  let hi = finite.length ? Math.max(...finite) : 1;
  if (floor !== null) lo = Math.min(lo, floor);
  if (ceiling !== null) hi = Math.max(hi, ceiling);
  if (lo === hi) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.05 : 1;
    return [lo - pad, hi + pad];
  }
  const pad = (hi - lo) * 0.08;
  return [floor !== null && lo >= floor ? lo : lo - pad, hi + pad];
}

/**
 * SVG path data through points {t, v} (t in ms). A gap longer than `maxGapMs` lifts the pen so an
 * outage shows as a hole rather than a straight line across it; `step` holds each value until the next.
 */
export function pathData(points, x, y, { maxGapMs = Infinity, step = false } = {}) {
  let d = "";
  let prev = null;
  for (const p of points) {
    if (!Number.isFinite(p.v)) {
      prev = null;
      continue;
    }
    const px = x(p.t).toFixed(1);
    const py = y(p.v).toFixed(1);
    if (prev === null || p.t - prev.t > maxGapMs) {
      d += `M${px},${py}`;
    } else if (step) {
      d += `H${px}V${py}`;
    } else {
      d += `L${px},${py}`;
    }
    prev = p;
  }
  return d;
}

/**
 * An axis label with just the precision the tick step needs: 4836827 (not 4.8M) when ticks are
 * blocks apart, 4836.8k when they are hundreds apart, 0.15 for small fractions.
 */
export function tickLabel(value, step) {
  const abs = Math.abs(value);
  for (const [unit, suffix] of [[1e6, "M"], [1e3, "k"]]) {
    if (abs >= unit * 10 && step >= unit / 10) {
      const decimals = Math.max(0, Math.ceil(-Math.log10(step / unit) - 1e-9));
      return `${(value / unit).toFixed(decimals)}${suffix}`;
    }
  }
  return value.toFixed(step >= 1 ? 0 : Math.ceil(-Math.log10(step) - 1e-9));
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = String(text);
  return node;
}

/** Time-axis label: seconds shown only when the axis spans too little time for minutes to differ. */
function clock(ms, spanMs) {
  const parts = { hour12: false, hour: "2-digit", minute: "2-digit" };
  if (spanMs < 15 * 60 * 1000) parts.second = "2-digit";
  return new Date(ms).toLocaleTimeString("en-GB", parts);
}

/**
 * A time chart of one or more series. Series: [{key, label, className, step?}]. Points arrive in
 * bulk (`set`) or one by one (`push`); only the last `windowMs` is kept and drawn.
 */
export class TimeChart {
  constructor(host, { series, height = 150, windowMs = 30 * 60 * 1000, floor = null, ceiling = null, maxGapMs = 60000 }) {
    this.host = host;
    this.series = series;
    this.height = height;
    this.windowMs = windowMs;
    this.floor = floor;
    this.ceiling = ceiling;
    this.maxGapMs = maxGapMs;
    this.data = new Map(series.map((s) => [s.key, []]));
    this.markers = [];
    this.queued = false;
    this.host.classList.add("chart");
    this.observer = new ResizeObserver(() => this.redraw());
    this.observer.observe(this.host);
  }

  set(key, points) {
    const clean = points.filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v)).sort((a, b) => a.t - b.t);
    this.data.set(key, clean);
    this.trim();
    this.redraw();
  }

  push(key, t, v) {
    if (!Number.isFinite(t) || !Number.isFinite(v)) return;
    const list = this.data.get(key);
    if (!list) return;
    if (list.length && list[list.length - 1].t > t) {
      list.push({ t, v });
      list.sort((a, b) => a.t - b.t);
    } else if (list.length && list[list.length - 1].t === t) {
      list[list.length - 1] = { t, v };
    } else {
      list.push({ t, v });
    }
    this.trim();
    this.redraw();
  }

  /** Vertical marks (e.g. when an anomaly opened): [{t, label}]. */
  setMarkers(markers) {
    this.markers = markers.filter((m) => Number.isFinite(m.t));
    this.redraw();
  }

  latest(key) {
    const list = this.data.get(key) || [];
    return list.length ? list[list.length - 1] : null;
  }

  trim() {
    const newest = Math.max(...[...this.data.values()].map((l) => (l.length ? l[l.length - 1].t : -Infinity)));
    if (!Number.isFinite(newest)) return;
    const oldest = newest - this.windowMs;
    for (const [key, list] of this.data) {
      const keep = list.findIndex((p) => p.t >= oldest);
      if (keep > 0) this.data.set(key, list.slice(keep));
      else if (keep === -1) this.data.set(key, []);
    }
  }

  redraw() {
    if (this.queued) return;
    this.queued = true;
    window.requestAnimationFrame(() => {
      this.queued = false;
      this.render();
    });
  }

  render() {
    const width = Math.max(120, Math.floor(this.host.clientWidth));
    const height = this.height;
    const margin = { top: 8, right: 10, bottom: 20, left: 44 };
    const all = [...this.data.values()].flat();
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
    if (all.length === 0) {
      root.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "chart-empty" }, "waiting for data"));
      this.host.replaceChildren(root);
      return;
    }
    const ts = all.map((p) => p.t);
    const tMax = Math.max(...ts);
    const tMin = Math.max(Math.min(...ts), tMax - this.windowMs);
    const [lo, hi] = valueDomain(all.map((p) => p.v), { floor: this.floor, ceiling: this.ceiling });
    const y = scaleLinear([lo, hi], [height - margin.bottom, margin.top]);

    const ticks = niceTicks(lo, hi, 3);
    const step = ticks.length > 1 ? ticks[1] - ticks[0] : Math.abs(ticks[0]) || 1;
    const labels = ticks.map((tick) => tickLabel(tick, step));
    // The left margin grows with the longest label so long block heights are not clipped.
    margin.left = Math.max(30, Math.max(...labels.map((l) => l.length)) * 6 + 10);
    const x = scaleLinear([tMin, tMax], [margin.left, width - margin.right]);
    ticks.forEach((tick, i) => {
      const ty = y(tick);
      root.append(svg("line", { x1: margin.left, x2: width - margin.right, y1: ty, y2: ty, class: "grid" }));
      root.append(svg("text", { x: margin.left - 4, y: ty + 3, "text-anchor": "end", class: "tick" }, labels[i]));
    });
    const fitting = Math.floor((width - margin.left) / (tMax - tMin < 15 * 60 * 1000 ? 110 : 90));
    const timeTicks = Math.max(1, Math.min(fitting, Math.floor((tMax - tMin) / 1000)));
    for (let i = 0; i <= timeTicks; i += 1) {
      const t = tMin + ((tMax - tMin) * i) / timeTicks;
      const anchor = i === 0 ? "start" : i === timeTicks ? "end" : "middle";
      root.append(svg("text", { x: x(t), y: height - 5, "text-anchor": anchor, class: "tick" }, clock(t, tMax - tMin)));
    }
    for (const marker of this.markers) {
      if (marker.t < tMin || marker.t > tMax) continue;
      const line = svg("line", { x1: x(marker.t), x2: x(marker.t), y1: margin.top, y2: height - margin.bottom, class: "marker" });
      line.append(svg("title", {}, marker.label));
      root.append(line);
    }
    for (const s of this.series) {
      const points = this.data.get(s.key) || [];
      const d = pathData(points, x, y, { maxGapMs: this.maxGapMs, step: Boolean(s.step) });
      if (d) root.append(svg("path", { d, class: `line ${s.className || ""}` }));
    }
    this.host.replaceChildren(root);
  }
}

/** The legend row for a chart's series, as plain HTML spans. */
export function legend(series) {
  const row = document.createElement("div");
  row.className = "legend";
  for (const s of series) {
    const item = document.createElement("span");
    item.className = `legend-item ${s.className || ""}`;
    item.textContent = s.label;
    row.append(item);
  }
  return row;
}
