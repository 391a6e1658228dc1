"""The dashboard as an operator uses it, in headless Chromium against `sentinai up`; its pure JS too."""

from __future__ import annotations

import functools
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright
from serving import serving
from upstack import UpStack

from sentinai.api.app import create_app
from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings
from sentinai.common.actions import RestartComponent
from sentinai.common.decisions import (
    ActionCommand,
    ActionProposed,
    ActionRequested,
    ActionVerdict,
    AuditRecorded,
    VerdictCode,
)
from sentinai.common.events import MetricSample, utcnow
from sentinai.common.net import free_port

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STATIC = Path(str(files("sentinai.api") / "static"))
REPORTS = Path(__file__).resolve().parents[2] / ".reports" / "dashboard"
DESKTOP: ViewportSize = {"width": 1400, "height": 900}
PHONE: ViewportSize = {"width": 375, "height": 800}


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        yield launched
        launched.close()


@pytest.fixture
def static_site() -> Iterator[str]:
    """The dashboard's files served as they are, from loopback, so their modules can be imported."""
    handler = functools.partial(_QuietHandler, directory=str(STATIC))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def _page_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def _overflowing(page: Page) -> list[str]:
    """Elements that stick out past the right edge of the viewport (what makes a phone scroll sideways)."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
            .map((e) => `${e.tagName.toLowerCase()}.${e.className} ${e.dataset.testid || ''}`)"""
    )
    if page.evaluate("document.documentElement.scrollWidth > window.innerWidth"):
        found.append("document is wider than the viewport")
    return found


def test_cost_figures_chart_paths_and_escaping_computed_in_the_browser(
    browser: Browser, static_site: str
) -> None:
    page = browser.new_page()
    errors = _page_errors(page)
    page.goto(static_site + "/", timeout=15_000)
    result = page.evaluate(
        """async () => {
          const d = await import('/derive.js');
          const c = await import('/charts.js');
          const common = await import('/common.js');
          const hour = 3600 * 1000;
          // 1 vCPU for an hour, then 2 vCPU for an hour.
          const steady = d.integrateVcpu([{t: 0, v: 1}, {t: hour, v: 2}, {t: 2 * hour, v: 2}],
                                         {maxGapMs: 2 * hour});
          // Samples every minute with a 30-minute hole: the hole is neither used nor covered.
          const gappy = [];
          for (let m = 0; m <= 10; m += 1) gappy.push({t: m * 60000, v: 4});
          for (let m = 40; m <= 50; m += 1) gappy.push({t: m * 60000, v: 4});
          const holes = d.integrateVcpu(gappy, {maxGapMs: 120000});
          const cost = d.costSummary({vcpuHours: steady.vcpuHours, coveredHours: steady.coveredHours,
                                      baselineVcpu: 8, pricePerVcpuHour: 0.0464});
          const x = c.scaleLinear([0, 10], [0, 100]);
          const y = c.scaleLinear([0, 1], [100, 0]);
          const path = c.pathData([{t: 0, v: 0}, {t: 1, v: 1}, {t: 9, v: 0}], x, y, {maxGapMs: 5});
          const forecast = d.forecastSeries([{occurredAt: '2026-01-01T00:00:00Z', horizonS: 300,
                                              predictedVCpu: 2, forecastCores: 1.5, upperBoundCores: 1.9,
                                              currentVCpu: 1}]);
          const hostile = '<img src=x onerror="window.pwned=1">';
          const node = common.el('p', {text: hostile}, hostile);
          document.body.append(node);
          return {steady, holes, cost, path, ticks: c.niceTicks(0, 97, 4),
                  labels: [c.tickLabel(4836827, 1), c.tickLabel(4836800, 200), c.tickLabel(0.15, 0.05)],
                  forecastAt: forecast.predicted[0].t, currentAt: forecast.current[0].t,
                  text: node.textContent, images: node.querySelectorAll('img').length,
                  message: common.errorMessage(401, {detail: 'missing or wrong x-api-key'})};
        }"""
    )
    assert result["steady"]["vcpuHours"] == pytest.approx(3.0)
    assert result["steady"]["coveredHours"] == pytest.approx(2.0)
    assert result["holes"]["vcpuHours"] == pytest.approx(4 * 20 / 60)
    assert result["holes"]["coveredHours"] == pytest.approx(20 / 60)
    # 8 vCPU static for 2 h = 16 vCPU-hours; the dynamic allocation used 3: 13 saved at $0.0464.
    assert result["cost"]["baselineVcpuHours"] == pytest.approx(16.0)
    assert result["cost"]["savings"] == pytest.approx(13 * 0.0464)
    assert result["cost"]["savingsFraction"] == pytest.approx(13 / 16)
    assert result["cost"]["monthlyBaseline"] == pytest.approx(8 * 730 * 0.0464)
    assert result["path"] == "M0.0,100.0L10.0,0.0M90.0,100.0"  # the pen lifts over the gap
    assert result["ticks"] == [0, 20, 40, 60, 80]
    # Block heights a few blocks apart keep every digit; a coarse axis may abbreviate.
    assert result["labels"] == ["4836827", "4836.8k", "0.15"]
    # A forecast is drawn at the time it is for, 300 s after it was made.
    assert result["forecastAt"] - result["currentAt"] == 300_000
    assert result["images"] == 0 and "<img" in result["text"]
    assert result["message"] == "401: missing or wrong x-api-key"
    assert not page.evaluate("window.pwned === 1")
    assert errors == []


def _pending_ids(stack: UpStack) -> set[str]:
    actions = stack.get("/api/actions", chain="twin", status="pending").json()["actions"]
    return {a["actionId"] for a in actions}


def test_operator_watches_the_twin_sees_a_stall_and_approves_the_restart_with_the_key(
    make_stack: Callable[..., UpStack], browser: Browser
) -> None:
    key = secrets.token_urlsafe(24)
    stack = make_stack(SENTINAI_API_KEY=key, SENTINAI_LOG_LEVEL="warn")

    def fresh_twin() -> bool:
        body = stack.get("/api/health").json()
        return any(c["chainId"] == "twin" and c["fresh"] for c in body["chains"])

    stack.eventually(fresh_twin, timeout_s=60, what="a fresh twin chain")
    REPORTS.mkdir(parents=True, exist_ok=True)

    page = browser.new_page(viewport=DESKTOP)
    errors = _page_errors(page)
    page.goto(stack.api + "/", timeout=15_000)
    # Survives only as long as the page is never reloaded.
    page.evaluate("window.__notReloaded = true")
    expect(page.get_by_test_id("chain-select")).to_have_value("twin", timeout=15_000)
    expect(page.get_by_test_id("stream-status")).to_have_text("live", timeout=15_000)

    height = page.get_by_test_id("metric-value-blockHeight")
    expect(height).to_have_text(re.compile(r"\d"), timeout=20_000)
    first_height = height.text_content()
    expect(height).not_to_have_text(first_height or "", timeout=20_000)

    injected = stack.cli("twin", "inject", "sequencer_stall")
    assert injected.returncode == 0, injected.stderr

    alert = page.get_by_test_id("active-alerts").get_by_test_id("alert")
    stall = alert.filter(has_text=re.compile("stall|block", re.IGNORECASE))
    expect(stall.first).to_be_visible(timeout=30_000)
    _rca_card_names_the_stall(page)

    pending = page.get_by_test_id("pending-action").filter(has_text="restart op-node")
    expect(pending).to_have_count(1, timeout=60_000)
    action_id = pending.get_attribute("data-action-id", timeout=5_000)
    assert action_id
    page.screenshot(path=str(REPORTS / "desktop.png"), full_page=True)

    pending.get_by_test_id("approve-button").click(timeout=5_000)
    expect(pending.get_by_test_id("action-message")).to_contain_text("401", timeout=10_000)
    assert action_id in _pending_ids(stack)
    expect(pending).to_have_count(1, timeout=5_000)

    # Nobody types a name: the approval is recorded as the key's owner (SENTINAI_API_KEY: "operator").
    expect(page.get_by_test_id("approver-identity")).to_contain_text("key's owner", timeout=5_000)
    page.get_by_test_id("api-key-input").fill(key, timeout=5_000)
    pending.get_by_test_id("approve-button").click(timeout=5_000)
    mine = f'[data-action-id="{action_id}"]'
    expect(page.locator(f'[data-testid="pending-action"]{mine}')).to_have_count(0, timeout=30_000)
    expect(page.locator(f'[data-testid="history-action"]{mine}')).to_be_visible(timeout=30_000)
    approved_by_key_owner = page.get_by_test_id("audit-item").filter(
        has=page.locator(".actor", has_text=re.compile("^operator$"))
    )
    expect(approved_by_key_owner).not_to_have_count(0, timeout=30_000)
    assert action_id not in _pending_ids(stack)

    assert page.evaluate("window.__notReloaded === true")
    assert page.evaluate("sessionStorage.getItem('sentinai.apiKey')") == key
    assert key not in page.evaluate("JSON.stringify(localStorage)")
    assert errors == []

    _phone_page_fits(browser, stack)
    _cost_page_counts_vcpu_hours(browser, stack)


def _rca_card_names_the_stall(page: Page) -> None:
    """A card with the class, the root cause, a confidence, the hypotheses and evidence lines."""
    diagnosed = page.get_by_test_id("rca-class").filter(has_text=re.compile("^sequencer_stall$"))
    card = page.get_by_test_id("rca-card").filter(has=diagnosed).first
    expect(card).to_be_visible(timeout=30_000)
    expect(card.get_by_test_id("rca-root-cause")).not_to_be_empty(timeout=5_000)
    expect(card.get_by_test_id("rca-confidence")).to_contain_text("%", timeout=5_000)
    # The card says whether its evidence rule is met, or what it still waits for.
    expect(card.get_by_test_id("rca-corroboration")).to_contain_text(
        re.compile(r"corroborated|waiting for corroboration"), timeout=5_000
    )
    expect(card.get_by_test_id("rca-hypotheses")).to_contain_text("sequencer_stall", timeout=5_000)
    expect(card.get_by_test_id("rca-evidence").locator("li").first).to_be_visible(timeout=5_000)


def _phone_page_fits(browser: Browser, stack: UpStack) -> None:
    """At 375 px everything stacks in one column: nothing sticks out sideways."""
    phone = browser.new_page(viewport=PHONE)
    phone.goto(stack.api + "/", timeout=15_000)
    expect(phone.get_by_test_id("rca-card").first).to_be_visible(timeout=15_000)
    expect(phone.get_by_test_id("metric-value-blockHeight")).to_have_text(re.compile(r"\d"), timeout=15_000)
    assert _overflowing(phone) == []
    phone.screenshot(path=str(REPORTS / "phone.png"), full_page=True)


def _cost_page_counts_vcpu_hours(browser: Browser, stack: UpStack) -> None:
    """vCPU-hours of the twin's allocation against the 8 vCPU baseline, and an edited baseline."""
    cost = browser.new_page(viewport=DESKTOP)
    cost_errors = _page_errors(cost)
    cost.goto(stack.api + "/cost", timeout=15_000)
    expect(cost.get_by_test_id("price-note")).to_contain_text("0.0464", timeout=15_000)
    expect(cost.get_by_test_id("cost-savings")).to_have_text(re.compile(r"\$\d"), timeout=30_000)
    used = float(cost.get_by_test_id("cost-vcpu-hours").get_attribute("data-value", timeout=5_000) or "nan")
    baseline = float(
        cost.get_by_test_id("cost-baseline-hours").get_attribute("data-value", timeout=5_000) or "nan"
    )
    assert 0 < used < baseline
    cost.get_by_test_id("baseline-input").fill("16", timeout=5_000)
    expect(cost.get_by_test_id("price-note")).to_contain_text("static 16 vCPU", timeout=5_000)
    # Figures of one render: the baseline is 16 vCPU over the hours the average was taken on.
    shown = cost.evaluate(
        """() => Object.fromEntries(['cost-vcpu-hours', 'cost-baseline-hours', 'cost-average'].map(
             (id) => [id, Number(document.querySelector(`[data-testid="${id}"]`).dataset.value)]))"""
    )
    covered_hours = shown["cost-vcpu-hours"] / shown["cost-average"]
    assert shown["cost-baseline-hours"] == pytest.approx(16 * covered_hours)
    cost.get_by_test_id("baseline-input").fill("8", timeout=5_000)
    cost.screenshot(path=str(REPORTS / "cost.png"), full_page=True)
    cost.set_viewport_size(PHONE)
    expect(cost.get_by_test_id("chart-allocation").locator("svg")).to_be_visible(timeout=5_000)
    cost.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth", timeout=5_000)
    assert _overflowing(cost) == []
    assert cost_errors == []


# ------------------------------------------------------------------ writes as the api answers them


class ScriptedPlanner:
    """The api's ``Commands`` port answering as the planner does: one verdict per action id
    (``None``: no answer in time), and for a refusal the audit record the planner writes."""

    def __init__(self, model: ReadModel, answers: dict[str, tuple[bool, VerdictCode, str, str] | None]):
        self.model = model
        self.answers = answers
        self.commands: list[ActionCommand] = []

    async def command(self, cmd: ActionCommand) -> ActionVerdict | None:
        self.commands.append(cmd)
        answer = self.answers[cmd.action_id]
        if answer is None:
            return None
        accepted, code, status, reason = answer
        if not accepted:
            self.model.apply_audit(
                AuditRecorded(
                    chain_id=cmd.chain_id,
                    kind="refused",
                    actor="planner",
                    action_id=cmd.action_id,
                    summary=f"{cmd.command} by {cmd.by} refused",
                    reasoning=reason,
                )
            )
        return ActionVerdict(
            chain_id=cmd.chain_id,
            answers=cmd.event_id,
            action_id=cmd.action_id,
            kind=cmd.command,
            accepted=accepted,
            code=code,
            status=status,
            reason=reason,
            approvals=(),
            approvals_required=1,
        )

    async def request(self, req: ActionRequested) -> ActionVerdict | None:
        raise AssertionError(f"the dashboard has no request form, yet it sent {req!r}")


def _model_with_pending(*components: str) -> ReadModel:
    """A twin chain with one sample and one restart proposal per component, all waiting for approval."""
    model = ReadModel(keep_anomalies=10)
    now = utcnow()
    model.apply_sample(
        MetricSample(chain_id="twin", component="op-geth", source="rpc", metrics={"blockHeight": 7})
    )
    for component in components:
        model.apply_proposed(
            ActionProposed(
                chain_id="twin",
                action_id=f"act-{component}",
                action=RestartComponent(component=component),
                tier="high",
                approvals_required=1,
                cooldown_s=600,
                status="pending_approval",
                reason=f"{component} stalled",
                proposed_by="bob",
                incident="sequencer_stall",
                episode_id=f"ep-{component}",
                expires_at=now + timedelta(hours=1),
            )
        )
    return model


@contextmanager
def _serving_api(model: ReadModel, commands: ScriptedPlanner, settings: ApiSettings) -> Iterator[str]:
    """The real api app (routes, guard, dashboard files) on a free loopback port, in a thread."""

    async def connected() -> bool:
        return True

    app = create_app(model, settings=settings, nats_connected=connected, commands=commands)
    # The dashboard holds an SSE stream open: shutdown must not wait for it.
    with serving(app, graceful_s=1) as url:
        yield url


def test_read_only_api_shows_a_banner_and_offers_no_way_to_approve(browser: Browser) -> None:
    model = _model_with_pending("op-node")
    planner = ScriptedPlanner(model, {})
    settings = ApiSettings(api_key=secrets.token_urlsafe(16), read_only_mode=True)
    with _serving_api(model, planner, settings) as api:
        page = browser.new_page(viewport=DESKTOP)
        errors = _page_errors(page)
        page.goto(api + "/", timeout=15_000)
        expect(page.get_by_test_id("read-only-banner")).to_be_visible(timeout=15_000)
        expect(page.get_by_test_id("read-only-banner")).to_contain_text("Read-only mode")
        # What waits is still shown; nothing on the page can approve, reject or take a key.
        card = page.get_by_test_id("pending-action").filter(has_text="op-node stalled")
        expect(card).to_be_visible(timeout=15_000)
        expect(page.get_by_test_id("approve-button")).to_have_count(0)
        expect(page.get_by_test_id("reject-button")).to_have_count(0)
        expect(page.get_by_test_id("key-form")).to_be_hidden()
        page.close()
    assert planner.commands == []
    assert errors == []


def test_the_planners_verdict_is_shown_refusals_with_their_reason(browser: Browser) -> None:
    key = secrets.token_urlsafe(16)
    model = _model_with_pending("op-node", "op-batcher", "op-proposer")
    refusal = "bob proposed this action and cannot approve it"
    planner = ScriptedPlanner(
        model,
        {
            "act-op-node": (False, "proposer", "pending_approval", refusal),
            "act-op-batcher": None,
            "act-op-proposer": (True, "ok", "rejected", "rejected by operator"),
        },
    )
    with _serving_api(model, planner, ApiSettings(api_key=key)) as api:
        page = browser.new_page(viewport=DESKTOP)
        errors = _page_errors(page)
        page.goto(api + "/", timeout=15_000)
        expect(page.get_by_test_id("read-only-banner")).to_be_hidden(timeout=15_000)
        # The name field is gone: the page says whose name is recorded.
        expect(page.get_by_test_id("operator-input")).to_have_count(0)
        expect(page.get_by_test_id("approver-identity")).to_contain_text("key's owner")
        page.get_by_test_id("api-key-input").fill(key, timeout=5_000)

        def card(component: str) -> Any:
            return page.locator(f'[data-testid="pending-action"][data-action-id="act-{component}"]')

        card("op-node").get_by_test_id("approve-button").click(timeout=5_000)
        message = card("op-node").get_by_test_id("action-message")
        expect(message).to_have_text(f"Refused: {refusal}", timeout=10_000)
        # The card, re-read after the refusal, carries the reason the api recorded for the action.
        expect(card("op-node").get_by_test_id("action-refusal")).to_contain_text(refusal, timeout=10_000)

        card("op-batcher").get_by_test_id("approve-button").click(timeout=5_000)
        undecided = card("op-batcher").get_by_test_id("action-message")
        expect(undecided).to_contain_text("No verdict yet", timeout=10_000)
        expect(undecided).to_contain_text("has not answered within")

        card("op-proposer").get_by_test_id("reject-button").click(timeout=5_000)
        expect(card("op-proposer").get_by_test_id("action-message")).to_have_text(
            re.compile("^Rejected: rejected by operator"), timeout=10_000
        )
        page.close()
    # Every write was made as the key's owner; the page sent no name of its own.
    assert [(c.action_id, c.command, c.by) for c in planner.commands] == [
        ("act-op-node", "approve", "operator"),
        ("act-op-batcher", "approve", "operator"),
        ("act-op-proposer", "reject", "operator"),
    ]
    assert errors == []
