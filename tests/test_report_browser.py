"""The HTML report in real headless Chromium: it renders, logs no error, fetches nothing, and hovers show cards.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
NUL-separated JSON on file descriptors 3 and 4), so no websocket or browser-driver
package is needed. Every wait is bounded, and the browser's process group is killed
whatever happens.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image

from flexibert.space.design_space import ModelCard
from tests.test_report import (
    REFERENCE,
    study_choice,
    study_measured,
    study_report_dir,
    study_seeds,
)

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")


class Browser:
    """A headless Chromium and one page, spoken to over the DevTools pipe."""

    def __init__(self, profile: Path, log: Path) -> None:
        to_child, self._to_chrome = os.pipe()
        self._from_chrome, from_child = os.pipe()
        # Chromium reads fd 3 and writes fd 4. bash puts the pipe ends there and execs it; they
        # are first moved to 10 and above, so that moving one cannot overwrite the other.
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_child, from_child)]
        os.close(to_child)
        os.close(from_child)
        wire = f'exec "$@" 3<&{ends[0]} 4>&{ends[1]} {ends[0]}<&- {ends[1]}>&-'
        args = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--mute-audio",
            "about:blank",
        ]
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            ["bash", "-c", wire, "chromium", *args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            pass_fds=ends,
            start_new_session=True,
        )
        for fd in ends:
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    # -- protocol ---------------------------------------------------------------------
    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe (exit code {self.proc.poll()})")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, timeout: float = 30, browser: bool = False) -> dict:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not browser:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, timeout
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def poll(self, expression: str, ok: Callable[[Any], bool], timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if ok(value) or time.monotonic() > deadline:
                return value
            time.sleep(0.2)

    def open(self, url: str, height: int = 1000) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        self.send("Page.navigate", {"url": url})
        state = "[location.href, document.readyState]"
        assert self.poll(state, lambda v: v == [url, "complete"], timeout=60) == [url, "complete"], "page did not load"

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.send("Browser.close", timeout=5, browser=True)
                self.proc.wait(timeout=5)
        except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired):
            pass
        finally:
            try:  # the whole group Chromium started: its renderer, GPU and zygote processes
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
            os.close(self._to_chrome)
            os.close(self._from_chrome)
            self._log.close()

    # -- what went wrong on the page ----------------------------------------------------
    def errors(self) -> list[str]:
        found = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                found.append(
                    f"exception: {p['exceptionDetails'].get('text')} {p['exceptionDetails'].get('exception', {})}"
                )
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                found.append(f"console.{p['type']}: {[a.get('value', a.get('description')) for a in p['args']]}")
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                found.append(f"log: {p['entry']['text']} {p['entry'].get('url', '')}")
        return found

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]


@pytest.fixture()
def report(study, tmp_path_factory) -> Path:
    return study_report_dir(study, tmp_path_factory)


@pytest.fixture()
def browser(report, tmp_path):  # after the report: Chromium need not idle while it is built
    b = Browser(tmp_path / "profile", tmp_path / "chromium.log")
    try:
        yield b
    finally:
        b.close()


POINTS = "document.querySelectorAll('#fb-map .scatterlayer .point').length"

# An isolated point of the 'measured' traces (its nearest other model at least 10 px away), in page coordinates.
ISOLATED_POINT = """
(() => {
  const gd = document.getElementById('fb-map');
  gd.scrollIntoView();
  const traces = Array.from(gd.querySelectorAll('.scatterlayer .trace'));
  const all = [];
  traces.forEach((el, t) => {
    const data = gd._fullData.filter(d => d.visible === true)[t];
    el.querySelectorAll('.point').forEach((p, k) => {
      const r = p.getBoundingClientRect();
      all.push({x: r.x + r.width / 2, y: r.y + r.height / 2, model: data.customdata[k], kind: data.meta.kind});
    });
  });
  let best = null;
  for (const p of all) {
    if (p.kind !== 'measured' || p.x < 0 || p.y < 0 || p.x > innerWidth || p.y > innerHeight) continue;
    let gap = Infinity;
    for (const q of all) if (q.model !== p.model) gap = Math.min(gap, Math.hypot(p.x - q.x, p.y - q.y));
    if (gap >= 10 && (!best || gap > best.gap)) best = {...p, gap};
  }
  return best;
})()
"""


def test_report_renders_hovers_and_filters_in_headless_chromium(study, report, browser, tmp_path):
    cards = [ModelCard.from_dict(d) for d in study["model_dicts"]]
    measured = study_measured(study)
    seeds = study_seeds(cards)
    browser.open((report / "report.html").resolve().as_uri())

    # Renders: one SVG marker per model, plus the measured and seed overlays.
    expected = len(cards) + len(measured) + len(seeds)
    assert browser.poll(POINTS, lambda n: n == expected) == expected
    box = browser.evaluate(
        "(() => { const r = document.getElementById('fb-map').getBoundingClientRect();"
        " return {x: r.x + scrollX, y: r.y + scrollY, w: r.width, h: r.height}; })()"
    )
    shot = browser.send(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": box["x"], "y": box["y"], "width": box["w"], "height": box["h"], "scale": 1},
        },
    )
    png = base64.b64decode(shot["data"])
    (tmp_path / "map.png").write_bytes(png)
    with Image.open(io.BytesIO(png)) as im:
        assert im.size[0] > 800 and im.size[1] > 500
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or range(10**6)) > 200, "the map looks blank"

    # Hover: a real mouse move onto an isolated measured point shows that model's card and scores.
    point = browser.evaluate(ISOLATED_POINT)
    assert point, "no isolated measured point on screen"
    browser.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": point["x"], "y": point["y"]})
    label = browser.poll(
        "Array.from(document.querySelectorAll('.hoverlayer .hovertext'), e => e.textContent).join(' ')",
        lambda text: bool(text),
        timeout=10,
    )
    i = point["model"]
    assert f"#{i} {cards[i]}" in label
    assert f"measured accuracy: {measured[i]:.4f}" in label and "predicted accuracy: " in label

    # Filters: without the 2-layer models only the 4-layer ones (and their overlays) stay drawn.
    browser.evaluate("document.querySelector('input.fb-filter[name=layers][value=\"2\"]').click()")
    four = [i for i, c in enumerate(cards) if c.l == 4]
    left = len(four) + sum(1 for i in measured if cards[i].l == 4) + sum(1 for i in seeds if cards[i].l == 4)
    assert browser.poll(POINTS, lambda n: n == left) == left
    status = browser.evaluate("document.getElementById('fb-map-status').textContent")
    assert status == f"showing {len(four)} of {len(cards)} models on the map"
    browser.evaluate("document.querySelector('input.fb-filter[name=similarity][value=\"mixed\"]').click()")
    pure = sum(1 for c in cards if c.l == 4 and len(set(c.s)) == 1)
    assert browser.evaluate("document.getElementById('fb-map-status').textContent").startswith(f"showing {pure} of")

    assert browser.errors() == []
    remote = [u for u in browser.requests() if not u.startswith(("file:", "data:", "about:"))]
    assert remote == [], "the report must work offline"


# Each key line of the answer: its text and where it lies in the viewport, before any scroll.
ANSWER_BOXES = """
(() => ['fb-winner', 'fb-reference', 'fb-retention'].map(id => {
  const e = document.getElementById(id);
  const r = e.getBoundingClientRect();
  const style = getComputedStyle(e);
  return {id, text: e.textContent, top: r.top, bottom: r.bottom, left: r.left, right: r.right,
          shown: style.visibility === 'visible' && style.display !== 'none' && r.width > 0 && r.height > 0};
}))()
"""


def test_answer_is_on_the_first_screen(study, report, browser):
    """At 1280x800, the winner, the reference and the retention are in view without scrolling."""
    browser.open((report / "report.html").resolve().as_uri(), height=800)
    assert browser.evaluate("[innerWidth, innerHeight, scrollY]") == [1280, 800, 0]
    boxes = {b["id"]: b for b in browser.evaluate(ANSWER_BOXES)}
    for b in boxes.values():
        assert b["shown"], b
        assert 0 <= b["top"] and b["bottom"] <= 800 and 0 <= b["left"] and b["right"] <= 1280, b
    cards = [ModelCard.from_dict(d) for d in study["model_dicts"]]
    choice = study_choice(study)
    winner = cards[choice["winner"]]
    assert str(winner) in boxes["fb-winner"]["text"] or f"L{winner.l} A{winner.a[0]} H{winner.h[0]}" in \
        boxes["fb-winner"]["text"]
    assert REFERENCE in boxes["fb-reference"]["text"]
    measured = study_measured(study)
    validation = measured[choice["winner"]] / measured[choice["reference"]]
    assert f"{100 * validation:.1f}% of its validation accuracy" in boxes["fb-retention"]["text"]
    assert browser.errors() == []
