"""Browser-test helpers: a live WSGI server, the OS Chromium, and the checks every page must pass
(axe-core accessibility, no horizontal scrolling, everything reachable by keyboard) plus screenshots.

These are plain functions rather than fixtures so a test can run a check at any point of a flow, on any
page object; conftest.py only wires them into fixtures. Every check raises AssertionError with a message
that names the offending elements, because "a11y check failed" alone sends the reader to a debugger.

The pages under test send a strict Content-Security-Policy, which blocks inline <script> and inline style
attributes: helpers run their JavaScript through page.evaluate (the DevTools protocol, which CSP does not
govern) and never through add_script_tag, and test pages must style themselves from stylesheet URLs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path

from werkzeug.serving import make_server

# Without the networking and update flags Chromium phones Google at start-up, which this machine's closed
# network refuses; --no-sandbox because CI runs as root in a container.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
INTERACTIVE = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex="-1"])'
PROBE = "data-keyboard-probe"

# Shared by the in-page scripts below, so every message names elements the same way.
_DESCRIBE_JS = r"""
const describe = (el) => {
  let s = el.tagName.toLowerCase();
  if (el.id) s += '#' + el.id;
  for (const c of el.classList) s += '.' + c;
  if (typeof el.name === 'string' && el.name) s += `[name=${el.name}]`;
  const label = el.getAttribute('aria-label') || el.labels?.[0]?.innerText || el.innerText || '';
  const text = label.trim().replace(/\s+/g, ' ');
  return text ? `${s} "${text.slice(0, 40)}"` : s;
};
"""


def chromium_executable() -> str:
    return os.environ.get("HOOKYARD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@dataclass(frozen=True)
class LiveServer:
    url: str


@contextmanager
def serve(app, host: str = "127.0.0.1") -> Iterator[LiveServer]:
    """Serves a WSGI app on a free port for the duration of the block."""
    server = make_server(host, 0, app, threaded=True)
    # make_server has already bound and is listening, so a request made now waits in the backlog:
    # no readiness poll is needed. A short poll interval keeps shutdown() (it waits one poll) fast.
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"live-server-{server.server_port}",
        daemon=True,
    )
    thread.start()
    try:
        yield LiveServer(url=f"http://{host}:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@cache
def _axe_source() -> str:
    # Only the bundled axe-core is used: the package's own wrapper injects with add_script_tag, which CSP blocks.
    return (files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")


def check_accessibility(page, context_label: str) -> None:
    """Fails when axe-core finds WCAG 2.1 A/AA violations on the page as it is now."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        # `;0` so evaluate does not try to serialise whatever the bundle's last expression returns.
        page.evaluate(_axe_source() + "\n;0")
    results = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS
    )
    violations = results["violations"]
    if not violations:
        return
    lines = [f"{context_label} ({page.url}): {len(violations)} accessibility violation(s):"]
    for v in violations:
        lines.append(f"- {v['id']} [{v['impact']}] {v['help']} ({len(v['nodes'])} element(s)) {v['helpUrl']}")
        for node in v["nodes"][:3]:
            lines.append(f"    at {' >>> '.join(map(str, node['target']))}")
    raise AssertionError("\n".join(lines))


def assert_fits_viewport(page) -> None:
    """Fails when the page scrolls horizontally, naming the elements that stick out furthest."""
    result = page.evaluate(
        "() => {"
        + _DESCRIBE_JS
        + r"""
      const width = window.innerWidth, scrollWidth = document.documentElement.scrollWidth;
      if (scrollWidth <= width) return {width, scrollWidth, offenders: []};
      // An element inside a box that clips or scrolls horizontally cannot widen the page itself.
      const clipped = (el) => {
        for (let a = el.parentElement; a && a !== document.body && a !== document.documentElement; a = a.parentElement)
          if (getComputedStyle(a).overflowX !== 'visible') return true;
        return false;
      };
      const offenders = [];
      for (const el of document.body.querySelectorAll('*')) {
        const r = el.getBoundingClientRect();
        if (r.right > width && !clipped(el)) offenders.push({what: describe(el), right: r.right, w: r.width});
      }
      offenders.sort((a, b) => b.right - a.right || b.w - a.w);
      return {width, scrollWidth, offenders: offenders.slice(0, 5)};
    }"""
    )
    if result["scrollWidth"] <= result["width"]:
        return
    worst = (
        "".join(f"\n- {o['what']}: right edge at {o['right']:.0f}px, {o['w']:.0f}px wide" for o in result["offenders"])
        or "\n(no single element found; check margins and transforms)"
    )
    raise AssertionError(
        f"{page.url} scrolls horizontally: content is {result['scrollWidth']}px wide "
        f"in a {result['width']}px viewport. Widest offenders:{worst}"
    )


def check_keyboard_reachable(page, max_tabs: int = 300) -> None:
    """Fails unless Tab alone reaches every visible, enabled interactive element on the page."""
    # Probe numbers stand in for element identity, which cannot cross from the page to Python.
    page.evaluate(
        """([selector, probe]) => {
      document.querySelectorAll(selector).forEach((el, i) => el.setAttribute(probe, String(i)));
      document.activeElement?.blur();
    }""",
        [INTERACTIVE, PROBE],
    )
    try:
        reached, first, outside = [], None, 0
        for _ in range(max_tabs):
            page.keyboard.press("Tab")
            # Focusable things outside the selector (contenteditable, iframes...) get a probe on the spot,
            # so the cycle is still detected when one of them comes first.
            probe = page.evaluate(
                """(probe) => {
              const el = document.activeElement;
              if (!el || el === document.body || el === document.documentElement) return null;
              if (!el.hasAttribute(probe)) el.setAttribute(probe, 'extra-' + Math.random());
              return el.getAttribute(probe);
            }""",
                PROBE,
            )
            # Headless Chromium takes focus out of the document for one Tab between the last element and
            # the first; out twice in a row means nothing on the page takes focus at all.
            outside = outside + 1 if probe is None else 0
            if outside == 2:
                break
            if probe is None:
                continue
            if probe == first:
                break
            first = first or probe
            reached.append(probe)
        unreached = page.evaluate(
            "([selector, probe, reached]) => {"
            + _DESCRIBE_JS
            + r"""
          const seen = new Set(reached);
          // Tab enters a radio group once; the arrow keys move within it.
          const group = (el) => el.type === 'radio' && el.name ? `${[...document.forms].indexOf(el.form)}|${el.name}` : null;
          const seenGroups = new Set();
          for (const el of document.querySelectorAll(`[${probe}]`))
            if (seen.has(el.getAttribute(probe)) && group(el)) seenGroups.add(group(el));
          return [...document.querySelectorAll(selector)]
            .filter((el) => el.checkVisibility({checkVisibilityCSS: true}) && !el.matches(':disabled')
                            && !el.closest('[inert]'))
            .filter((el) => !seen.has(el.getAttribute(probe)) && !(group(el) && seenGroups.has(group(el))))
            .map(describe);
        }""",
            [INTERACTIVE, PROBE, reached],
        )
    finally:
        page.evaluate(
            "(probe) => document.querySelectorAll(`[${probe}]`).forEach((el) => el.removeAttribute(probe))", PROBE
        )
    assert not unreached, (
        f"{page.url}: {len(unreached)} interactive element(s) never received focus from Tab "
        f"({len(reached)} reached):\n" + "\n".join(f"- {u}" for u in unreached)
    )


_session_screenshots: Path | None = None


def set_session_screenshots_dir(path: Path) -> None:
    """Where screenshots go when HOOKYARD_SCREENSHOTS_DIR is unset; conftest points it at pytest's tmp."""
    global _session_screenshots
    _session_screenshots = path


def save_screenshot(page, name: str) -> Path:
    """Saves a full-page PNG: into HOOKYARD_SCREENSHOTS_DIR (`make screenshots` sets it to docs/screenshots),
    otherwise into this session's temporary directory, so a plain test run leaves the repository alone."""
    global _session_screenshots
    configured = os.environ.get("HOOKYARD_SCREENSHOTS_DIR")
    if configured:
        directory = Path(configured)
    else:
        if _session_screenshots is None:
            _session_screenshots = Path(tempfile.mkdtemp(prefix="hookyard-screenshots-"))
        directory = _session_screenshots
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    # Animations frozen so the images in docs/ only change when the page does.
    page.screenshot(path=path, full_page=True, animations="disabled")
    return path


def checked(page, name: str | None = None) -> None:
    """The checks every page passes, after its screenshot when it has a name (before the keyboard walk moves the
    focus): axe-core's accessibility rules, no sideways scrolling, every control reachable by Tab."""
    if name:
        save_screenshot(page, name)
    check_accessibility(page, name or page.url)
    assert_fits_viewport(page)
    check_keyboard_reachable(page)
