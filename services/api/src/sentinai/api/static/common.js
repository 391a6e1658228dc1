// Shared by both pages: DOM building (text only), formatting, REST calls and the live stream.

/** Build an element; every string lands through textContent, never as HTML. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { cls, text, testid, attrs, title } = props;
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (testid) node.dataset.testid = testid;
  if (title) node.title = String(title);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace a container's children (an empty list shows `emptyText`). */
export function fill(container, children, emptyText) {
  const list = children.filter(Boolean);
  if (list.length === 0 && emptyText) {
    container.replaceChildren(el("p", { cls: "empty", text: emptyText }));
  } else {
    container.replaceChildren(...list);
  }
}

export function fmtNum(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "–";
  const n = Number(value);
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString("en-US");
  return n.toLocaleString("en-US", { maximumFractionDigits: digits });
}

export function fmtTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleTimeString("en-GB", { hour12: false });
}

export function fmtDateTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return `${date.toLocaleDateString("en-CA")} ${date.toLocaleTimeString("en-GB", { hour12: false })}`;
}

export function fmtPercent(fraction, digits = 0) {
  if (fraction === null || fraction === undefined) return "–";
  return `${(Number(fraction) * 100).toFixed(digits)}%`;
}

/** The message a person should read for a failed request: the server's own words when it sent some. */
export function errorMessage(status, body) {
  const detail = body && typeof body === "object" ? body.detail ?? body.message ?? body.error : body;
  if (typeof detail === "string" && detail) return `${status}: ${detail}`;
  if (Array.isArray(detail) && detail.length > 0) {
    const parts = detail.map((d) => (d && typeof d === "object" ? `${(d.loc || []).join(".")} ${d.msg}` : d));
    return `${status}: ${parts.join("; ")}`;
  }
  return `${status}: request failed`;
}

const VERDICT_HEADLINE = {
  approved: "Approved",
  auto_approved: "Approved",
  rejected: "Rejected",
  waiting: "Approval recorded, more needed",
  pending_approval: "Approval recorded, more needed",
};

/** The planner's verdict in a person's words: {tone, text} for the card's message line. */
export function verdictMessage(command, result) {
  const body = result.body && typeof result.body === "object" ? result.body : {};
  if (result.status === 200) {
    if (body.accepted === false) return { tone: "error", text: `Refused: ${body.reason || body.code || "the planner refused it"}` };
    const headline = VERDICT_HEADLINE[body.status] || (command === "approve" ? "Approval accepted" : "Rejection accepted");
    const names = (body.approvals || []).map((a) => (a && typeof a === "object" ? a.by : a)).filter(Boolean);
    const tally = body.approvalsRequired ? ` · approvals ${names.length}/${body.approvalsRequired}${names.length ? ` (${names.join(", ")})` : ""}` : "";
    return { tone: "ok", text: `${headline}${body.reason ? `: ${body.reason}` : ""}${tally}` };
  }
  if (result.status === 202) {
    return { tone: "undecided", text: `No verdict yet: ${body.note || "the planner has not answered; the card updates when it does"}` };
  }
  if (result.status === 409) {
    const detail = body.detail;
    const reason = typeof detail === "string" ? detail : (detail && detail.reason) || (body.verdict && body.verdict.reason);
    return { tone: "error", text: reason ? `Refused: ${reason}` : result.message };
  }
  return { tone: "error", text: result.message };
}

async function readBody(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** GET a JSON endpoint; resolves to {ok, status, body, message} and never throws. */
export async function getJson(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(name, String(value));
  }
  const url = query.toString() ? `${path}?${query}` : path;
  try {
    const response = await fetch(url, { headers: { accept: "application/json" } });
    const body = await readBody(response);
    return { ok: response.ok, status: response.status, body, message: response.ok ? "" : errorMessage(response.status, body) };
  } catch (err) {
    return { ok: false, status: 0, body: null, message: `network error: ${err.message}` };
  }
}

/** POST JSON with the operator's API key; same result shape as getJson. */
export async function postJson(path, payload, { apiKey } = {}) {
  const headers = { "content-type": "application/json", accept: "application/json" };
  if (apiKey) headers["x-api-key"] = apiKey;
  try {
    const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(payload) });
    const body = await readBody(response);
    return { ok: response.ok, status: response.status, body, message: response.ok ? "" : errorMessage(response.status, body) };
  } catch (err) {
    return { ok: false, status: 0, body: null, message: `network error: ${err.message}` };
  }
}

/** The chain ids the api knows, in its order. */
export async function loadChains() {
  const result = await getJson("/api/chains");
  if (!result.ok) return { chains: [], message: result.message };
  return { chains: result.body.chains || [], message: "" };
}

/** The chain to show first: ?chain= in the URL, then the last one picked, then the first known. */
export function initialChain(chainIds) {
  const fromUrl = new URLSearchParams(window.location.search).get("chain");
  if (fromUrl && chainIds.includes(fromUrl)) return fromUrl;
  const remembered = window.localStorage.getItem("sentinai.chain");
  if (remembered && chainIds.includes(remembered)) return remembered;
  return chainIds[0] ?? null;
}

export function rememberChain(chainId) {
  window.localStorage.setItem("sentinai.chain", chainId);
  const url = new URL(window.location.href);
  url.searchParams.set("chain", chainId);
  window.history.replaceState(null, "", url);
}

/** A `sample` event's values: flat beside chainId and at, or nested under `metrics`. */
export function sampleMetrics(sample) {
  return sample && typeof sample.metrics === "object" && sample.metrics !== null ? sample.metrics : sample || {};
}

export const STREAM_EVENTS = ["sample", "anomaly", "anomaly_resolved", "rca", "prediction", "action", "audit"];

/**
 * Follow /api/stream for one chain. EventSource reconnects by itself after a dropped connection;
 * when the server ends the stream for good (readyState CLOSED) we open a new one after a pause.
 * `onStatus` hears "live" / "reconnecting"; `onResync` runs after every reconnect so the page can
 * fetch what it missed while the stream was down.
 */
export function followStream(chainId, handlers, { onStatus, onResync }) {
  let source = null;
  let stopped = false;
  let wasDown = false;
  let retryTimer = null;

  const open = () => {
    source = new EventSource(`/api/stream?chain=${encodeURIComponent(chainId)}`);
    source.addEventListener("open", () => {
      onStatus("live");
      if (wasDown) onResync();
      wasDown = false;
    });
    source.addEventListener("error", () => {
      wasDown = true;
      onStatus("reconnecting");
      if (source.readyState === EventSource.CLOSED && !stopped) {
        retryTimer = window.setTimeout(open, 3000);
      }
    });
    for (const name of STREAM_EVENTS) {
      if (!handlers[name]) continue;
      source.addEventListener(name, (event) => {
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        if (data && data.chainId && data.chainId !== chainId) return;
        handlers[name](data);
      });
    }
  };
  open();
  return () => {
    stopped = true;
    window.clearTimeout(retryTimer);
    if (source) source.close();
  };
}

/** Run `fn` at most once per animation frame however often it is asked for. */
export function coalesce(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    window.requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}
