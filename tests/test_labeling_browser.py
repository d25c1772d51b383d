"""The labeling widgets and the live dashboard in a real browser: headless Debian chromium driven by Playwright, in
both front ends people open notebooks with: JupyterLab and Jupyter Notebook 7 (the `notebook` package).

Per front end, one server (127.0.0.1, a free port, a random token, its own config/runtime/IPython dirs) serves one
notebook with five widget cells (one asking several criteria per pair), a probe cell and a dashboard cell. Each
test runs its cell, presses the widget's keys (and the letters both front ends bind in command mode: m, a, b,
Escape then m) and clicks, then checks the SQLite file (polling), that the notebook still has the same cells, that
focus stayed in the widget, and that none of the XSS payloads in the model text ran. The dashboard test checks that
plots grow while the cell still runs.

Readiness: Notebook 7 has no status bar, and its kernel status line fades out; the toolbar's execution indicator
exists in both but can say idle while the kernel still starts (DESIGN.md). So the page counts as ready once the
probe cell has run and printed where the kernel imports rlhfkit from (which must be this checkout).

Chromium comes from Debian (`.ci/install-chromium`, run by `make test` and `.ci/run`). When it is missing and
cannot be installed (not root) the tests skip with that reason, unless RLHFKIT_REQUIRE_BROWSER=1 (CI) makes that a
failure. See ../shared/DESIGN.md for the set-up this follows.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rlhfkit.labeling import LabelStore

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[1]

# Each payload sets its own marker if it ever runs; none may be set at the end.
XSS = {
    "script": "<script>window.__xss_script = 1</script>",
    "img": '<img src=x onerror="window.__xss_img = 1">',
    "svg": '<svg onload="window.__xss_svg = 1"><circle r="1"></circle></svg>',
    "iframe": '<iframe src="javascript:parent.__xss_iframe = 1"></iframe>',
    "srcdoc": '<iframe srcdoc="<script>parent.__xss_srcdoc = 1</script>"></iframe>',
    "details": '<details open ontoggle="window.__xss_details = 1"><summary>s</summary></details>',
    "autofocus": '<input autofocus onfocus="window.__xss_autofocus = 1">',
    "breakout": '"><img src=x onerror="window.__xss_breakout = 1">',
    "href": '<a href="javascript:window.__xss_href = 1">click</a>',
    "mdlink": "[click me](javascript:window.__xss_mdlink=1)",
    "mdlink_case": "[click](  JaVaScRiPt:window.__xss_mdlink_case=1 )",
    "mdimg": '![x](x" onerror="window.__xss_mdimg=1)',
    "data": "[data](data:text/html,<script>parent.__xss_data=1</script>)",
    "code": '`<img src=x onerror="window.__xss_code = 1">`',
    "style": '<style>*{background:url("javascript:window.__xss_style=1")}</style>',
}
PAYLOADS = list(XSS.values())
N_PAIRS = 12
FRONTENDS = ["lab", "notebook"]  # JupyterLab, Jupyter Notebook 7
# Cell indexes in the test notebook (see _notebook).
PAIRWISE, MARKDOWN_PAIRWISE, RANKING, DEMONSTRATION, PROBE, DASHBOARD, CRITERIA = 1, 3, 4, 5, 6, 7, 8
DASHBOARD_MAX_STEPS = 600  # the dashboard cell logs a step every 0.2 s until the test stops it (or 2 minutes)


def _chromium_or_skip() -> None:
    if not os.path.exists(CHROMIUM):
        installer = REPO / ".ci" / "install-chromium"
        if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") and installer.exists():
            subprocess.run(["sh", str(installer)], check=False, timeout=900)
    if not os.path.exists(CHROMIUM):
        reason = (
            f"{CHROMIUM} is missing and could not be installed (needs root and apt-get: run "
            f"`sh .ci/install-chromium` as root, or install Debian's 'chromium' package)"
        )
        if os.environ.get("RLHFKIT_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + "; RLHFKIT_REQUIRE_BROWSER=1 forbids skipping")
        pytest.skip(reason)
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fill_store(path: Path) -> None:
    with LabelStore(path) as store:
        store.add_pairs(
            [
                {
                    "prompt": f"Prompt {i}: review this {PAYLOADS[i % len(PAYLOADS)]}",
                    "response_a": f"Answer A{i}: {PAYLOADS[(2 * i) % len(PAYLOADS)]} **bold {i}** [docs](https://example.com/a?i={i})",
                    "response_b": f"Answer B{i}: {PAYLOADS[(2 * i + 1) % len(PAYLOADS)]} _em_ `code`"
                    "\n- item one\n- item two",
                }
                for i in range(N_PAIRS)
            ]
        )
        store.add_rankings(
            [
                {
                    "prompt": f"Rank prompt {i} {PAYLOADS[i]}",
                    "responses": [f"Ranked {i}.{j} {PAYLOADS[(i + j) % len(PAYLOADS)]}" for j in range(3)],
                }
                for i in range(3)
            ]
        )
        store.add_prompts([f"Write a review {i} {PAYLOADS[-1 - i]}" for i in range(3)])


def _notebook(db: Path, stop: Path) -> dict:
    def code(src):
        return {"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None}

    def markdown(src):
        return {"cell_type": "markdown", "metadata": {}, "source": src}

    cells = [
        markdown("# Labeling widgets under test"),
        code(f"from rlhfkit.labeling import PairwiseLabeler\nw = PairwiseLabeler({str(db)!r}, 'browser', window=5)\nw"),
        markdown("Between the widgets."),
        code(f"from rlhfkit.labeling import PairwiseLabeler\nPairwiseLabeler({str(db)!r}, 'md', markdown=True)"),
        code(f"from rlhfkit.labeling import RankingLabeler\nRankingLabeler({str(db)!r}, 'ranker')"),
        code(f"from rlhfkit.labeling import DemonstrationWriter\nDemonstrationWriter({str(db)!r}, 'writer')"),
        code("import rlhfkit\nprint('rlhfkit from', rlhfkit.__file__)"),
        # A training loop's shape: a logged step every 0.2 s, the dashboard drawing live while the cell runs, until
        # the test has seen it draw and creates `stop` (so a slow machine cannot end the run before the check).
        code(
            "import time\nfrom pathlib import Path\nfrom rlhfkit.live import Dashboard\n"
            f"dash, stop, step = Dashboard('ppo', min_interval=0.2), Path({str(stop)!r}), 0\n"
            f"while not stop.exists() and step < {DASHBOARD_MAX_STEPS}:\n"
            "    step += 1\n"
            "    dash(step, {'objective/scores': 0.1 * step, 'objective/kl': 0.01 * step, 'learning_rate': 2e-4})\n"
            "    time.sleep(0.2)\ndash.close()\nprint('logged steps:', step)"
        ),
        code(
            f"from rlhfkit.labeling import PairwiseLabeler\n"
            f"PairwiseLabeler({str(db)!r}, 'critic', criteria=['helpful', 'harmless'])"
        ),
        markdown("The end."),
    ]
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@pytest.fixture(scope="module", params=FRONTENDS)
def lab(request, tmp_path_factory):
    """A JupyterLab or Notebook 7 server with the test notebook and its own label store."""
    _chromium_or_skip()
    frontend = request.param
    tmp = tmp_path_factory.mktemp(frontend)
    root, db = tmp / "root", tmp / "root" / "labels.db"
    root.mkdir()
    _fill_store(db)
    stop = tmp / "stop-dashboard"
    notebook = _notebook(db, stop)
    (root / "widgets.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        IPYTHONDIR=str(tmp / "ipython"),
        JUPYTER_DATA_DIR=str(tmp / "data"),
    )
    # No news / update toasts: nothing but the test should touch the page.
    settings = tmp / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"checkForUpdates": False, "fetchNews": "false"})
    )
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp / "lab.log", "wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            {"lab": "jupyterlab", "notebook": "notebook"}[frontend],
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def api(path, method="GET"):
        req = urllib.request.Request(base + path, method=method, headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.read()

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                api("/api/status")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{frontend} did not start:\n" + (tmp / "lab.log").read_text()[-3000:])
                time.sleep(0.3)
        path = {"lab": "/lab/tree/widgets.ipynb?reset&", "notebook": "/notebooks/widgets.ipynb?"}[frontend]
        yield {
            "frontend": frontend,
            "url": f"{base}{path}token={token}",
            "db": db,
            "notebook": notebook,
            "log": tmp / "lab.log",
            "stop_dashboard": stop,
            "sessions": lambda: json.loads(api("/api/sessions")),
        }
    finally:
        try:
            api("/api/shutdown", method="POST")
            server.wait(timeout=15)
        except Exception:
            server.kill()
            server.wait(timeout=15)
        log.close()


@pytest.fixture(scope="module")
def browser():
    _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser, lab):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    errors = []
    pg.on("pageerror", lambda exc: errors.append(f"{exc}\n{exc.stack or ''}"[:2000]))
    pg.goto(lab["url"])
    pg.locator(".jp-Notebook .jp-Cell").first.wait_for()

    # The page's kernel must exist before a cell runs. The server knows: the notebook's session with an idle kernel.
    # Under load Lab sometimes asks "Select Kernel" although the notebook names python3 (its kernel specs came too
    # late?): its preselected choice is that kernel, so accept it as a person would.
    def kernel_idle():
        return any(
            s.get("path", "").endswith("widgets.ipynb") and (s.get("kernel") or {}).get("execution_state") == "idle"
            for s in lab["sessions"]()
        )

    deadline = time.monotonic() + 90
    while not kernel_idle():
        assert time.monotonic() < deadline, f"no idle kernel for the notebook: {lab['sessions']()}"
        accept_kernel_dialog(pg)
        time.sleep(0.3)
    # Both front ends have the toolbar's execution indicator; it can say idle before the page's kernel connection
    # takes requests, so the last signal is the probe cell running (run_cell retries a Shift+Enter that did nothing).
    pg.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(timeout=60_000)
    probe = run_cell(pg, PROBE, ".jp-OutputArea-output")
    pg.wait_for_function("o => /rlhfkit from/.test(o.textContent)", arg=probe.element_handle(), timeout=60_000)
    imported = probe.inner_text().split("rlhfkit from", 1)[1].strip()
    assert Path(imported).resolve().is_relative_to(REPO), f"the kernel imports rlhfkit from {imported}, not {REPO}"
    # The XSS check below must be able to see a payload that does run: prove it once with a control.
    pg.evaluate("""() => { const d = document.createElement('div'); d.style.display = 'none';
        document.body.append(d); d.innerHTML = '<img src=x onerror="window.__control_img = 1">'; }""")
    pg.wait_for_function("() => window.__control_img === 1", timeout=10_000)
    pg.lab_errors = errors
    pg.frontend = lab["frontend"]
    yield pg
    context.close()


# -- helpers ------------------------------------------------------------------------------------------------------


def accept_kernel_dialog(page) -> bool:
    """Accept a "Select Kernel" dialog (its preselected kernel is the notebook's own); True if there was one."""
    dialog = page.locator(".jp-Dialog").filter(has_text="Select Kernel")
    if not dialog.count():
        return False
    dialog.first.locator(".jp-Dialog-button.jp-mod-accept").click()
    return True


def _known_frontend_error(error: str) -> bool:
    """Notebook 7.6.5's own start-up error, thrown on a plain notebook with no widget at all: its shortcuts
    settings plugin reads the schema of a settings plugin it has not loaded."""
    return "reading 'schema'" in error and "/static/notebook/notebook_core." in error


def cell(page, index):
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def run_cell(page, index: int, root: str):
    """Run a code cell with Shift+Enter and wait for its widget; retried if the keypress was swallowed."""
    target = cell(page, index)
    for attempt in range(5):
        accept_kernel_dialog(page)
        dialog = page.locator(".jp-Dialog")
        if dialog.count():  # e.g. a kernel error: say what it says instead of timing out on the click
            raise AssertionError(f"a dialog blocks cell {index}: {dialog.first.inner_text()!r}")
        target.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        prompt = target.locator(".jp-InputPrompt")
        try:
            page.wait_for_function(
                "p => /\\[(\\*|\\d+)\\]/.test(p.textContent)", arg=prompt.element_handle(), timeout=5_000
            )
        except Exception:
            continue  # not even queued: press again
        target.locator(root).wait_for(timeout=60_000)
        return target.locator(root)
    raise AssertionError(f"cell {index} did not run after 5 tries")


def focused_in(page, root_locator) -> bool:
    return root_locator.evaluate("root => root.contains(document.activeElement)")


def press(page, root_locator, key: str):
    """Press a key and wait until the widget is not waiting for an ack (so the next key is not dropped)."""
    page.keyboard.press(key)
    settle(root_locator)


def settle(root_locator):
    root_locator.page.wait_for_function(
        "root => !root.classList.contains('lm-pending')", arg=root_locator.element_handle(), timeout=20_000
    )


def cell_types(page) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll('.jp-Notebook .jp-Cell')].map(c =>
        c.classList.contains('jp-CodeCell') ? 'code' : c.classList.contains('jp-MarkdownCell') ? 'markdown' : 'raw')""")


def check_page_is_safe(page, lab):
    """No payload ran, nothing dangerous was created from model text, and the notebook has its original cells."""
    check_dom(page)
    assert cell_types(page) == [c["cell_type"] for c in lab["notebook"]["cells"]], "the notebook's cells changed"


def check_dom(page):
    """What the widgets show now: no payload ran, and no element or attribute came from model text.
    (Called for every item shown: a javascript: link would only run when clicked, so its absence is checked.)"""
    ran = page.evaluate("() => Object.keys(window).filter(k => k.startsWith('__xss_'))")
    assert ran == [], f"XSS payloads ran: {ran}"
    bad = page.evaluate("""() => {
        const out = [];
        for (const root of document.querySelectorAll('.lm-root')) {
            for (const el of root.querySelectorAll('*')) {
                const tag = el.tagName.toUpperCase();
                if (['SCRIPT', 'IMG', 'SVG', 'IFRAME', 'STYLE', 'OBJECT', 'EMBED', 'FORM'].includes(tag)
                    || (tag === 'DETAILS' && !el.classList.contains('lm-history'))  // the widget's own elements
                    || (tag === 'INPUT' && !el.classList.contains('lm-rationale')))
                    out.push(tag);
                for (const a of el.attributes) if (a.name.startsWith('on')) out.push(el.tagName + '@' + a.name);
                const href = el.getAttribute('href') || '';
                if (el.tagName === 'A' && !/^https?:\\/\\//.test(href)) out.push('A@' + href);
            }
        }
        return out; }""")
    assert bad == [], f"elements built from model text: {bad}"


def wait_rows(db: Path, annotator: str, check, timeout: float = 20.0):
    """Poll the label store until check(active judgments, all judgments) holds; return the active ones."""
    deadline = time.monotonic() + timeout
    with LabelStore(db) as store:
        while True:
            active = store.judgments(annotator=annotator)
            every = store.judgments(annotator=annotator, active_only=False)
            try:
                check(active, every)
                return active
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)


def active_count(n: int):
    """A wait_rows check: exactly n active judgments."""

    def check(active, every):
        assert len(active) == n, f"{len(active)} active judgments, expected {n}"

    return check


def choice_for(db: Path, item_id: int, annotator: str, side: str) -> str:
    with LabelStore(db) as store:
        order = store.display_order(item_id, annotator)
    return {"left": "ab"[order[0]], "right": "ab"[order[1]]}.get(side, side)


# -- the tests ----------------------------------------------------------------------------------------------------


def test_pairwise_keys_clicks_and_lab_letters(page, lab):
    db = lab["db"]
    root = run_cell(page, PAIRWISE, ".lm-pairwise")
    root.locator(".lm-card").first.wait_for()
    page.wait_for_function("r => r.contains(document.activeElement)", arg=root.element_handle(), timeout=5_000)
    # Model text shows as text: the first item's payloads are visible literally.
    with LabelStore(db) as store:
        first = store.item(1)
    shown = root.locator(".lm-pair").inner_text()
    assert PAYLOADS[0] in shown and PAYLOADS[1] in shown and first["prompt"] in root.locator(".lm-prompt").inner_text()

    for key in ["1", "2", "3", "4", "ArrowLeft", "ArrowRight", "s"]:  # items 1..7
        press(page, root, key)
        check_dom(page)
    press(page, root, "z")  # undo the skip of item 7
    for key in ["m", "a", "b", "Escape", "m"]:  # Lab's command-mode letters: must do nothing here
        press(page, root, key)
        assert focused_in(page, root), f"focus left the widget after {key!r}"
    press(page, root, "Backspace")  # undo item 6: it is shown again first
    root.locator(".lm-choice-right").click()  # item 6: right, by clicking
    settle(root)
    # A double click on "A better" for item 7: both clicks land before any ack can (same JS task), so only the
    # pending-ack guard stands between them and a second judgment on item 8.
    root.locator(".lm-choice-left").evaluate(
        "b => { b.click(); b.click(); b.dispatchEvent(new MouseEvent('dblclick', {bubbles: true})); }"
    )
    settle(root)
    # A held key repeats (Playwright marks the later keydowns repeat=true); the pauses outlast the ack, so only
    # the repeat check keeps item 9 from getting a judgment too.
    page.keyboard.down("2")  # item 8: right
    for _ in range(2):
        time.sleep(0.4)
        page.keyboard.down("2")
    page.keyboard.up("2")
    settle(root)
    page.keyboard.press("r")  # into the rationale box: typed keys are text, not shortcuts
    page.keyboard.type("because 1 2 s z m a b")
    page.keyboard.press("Enter")  # back to the shortcuts
    press(page, root, "1")  # item 9: left, with the rationale

    expected = {1: "left", 2: "right", 3: "tie", 4: "both_bad", 5: "left", 6: "right", 7: "left", 8: "right", 9: "left"}
    expected = {i: choice_for(db, i, "browser", side) for i, side in expected.items()}

    def check(active, every):
        assert dict(zip(active["item_id"], active["choice"])) == expected
        assert sorted(every["status"].tolist()) == ["active"] * 9 + ["undone"] * 2

    active = wait_rows(db, "browser", check)
    assert active.set_index("item_id").loc[9, "rationale"] == "because 1 2 s z m a b"
    with LabelStore(db) as store:  # the order shown is recorded with each judgment
        orders = {r["item_id"]: r["display_order"] for r in store.history("browser", limit=20)}
        assert all(orders[i] == store.display_order(i, "browser") for i in expected)
    assert root.locator(".lm-counts").inner_text().startswith("9 done · 0 skipped · 3 left")
    assert focused_in(page, root)
    assert root.get_attribute("data-lm-suppress-shortcuts") == "true"
    check_page_is_safe(page, lab)


def test_pairwise_edit_from_history(page, lab):
    root = cell(page, PAIRWISE).locator(".lm-pairwise")
    root.locator(".lm-history summary").click()
    entry = root.locator(".lm-history-entry").filter(has_text="#5")
    entry.click()
    assert "Editing your decision on item #5" in root.locator(".lm-edit-banner").inner_text()
    press(page, root, "3")  # item 5 becomes a tie

    def check(active, every):
        assert dict(zip(active["item_id"], active["choice"]))[5] == "tie" and len(active) == 9
        assert (every["status"] == "superseded").sum() == 1

    wait_rows(lab["db"], "browser", check)
    # Each entry says the side pressed and starts the chosen text as the export has it (model text, as text).
    with LabelStore(lab["db"]) as store:
        chosen = {r["item_id"]: r["chosen"] for r in store.to_preferences(annotators=["browser"])[0]}
    entries = root.locator(".lm-history-entry")
    page.wait_for_function(
        "r => r.querySelector('.lm-history-entry .lm-history-what').textContent === 'Tie'",
        arg=root.element_handle(),
        timeout=10_000,
    )  # item 5's edit is listed first
    with_text = 0
    for i in range(entries.count()):
        entry = entries.nth(i)
        item_id = int(entry.locator(".lm-history-id").inner_text().lstrip("#"))
        shown = entry.locator(".lm-history-chosen")
        if item_id not in chosen:  # a tie or both bad: nothing chosen
            assert shown.count() == 0, item_id
            continue
        start = shown.inner_text().strip("“”").rstrip("…")
        assert len(start) >= 20 and " ".join(chosen[item_id].split()).startswith(start), (item_id, start)
        with_text += 1
    assert with_text >= 5
    check_page_is_safe(page, lab)


def test_markdown_mode_renders_through_the_allow_list(page, lab):
    root = run_cell(page, MARKDOWN_PAIRWISE, ".lm-pairwise")
    root.locator(".lm-card .lm-md").first.wait_for()
    assert root.locator(".lm-md strong").first.inner_text().startswith("bold")
    assert root.locator(".lm-md li").count() >= 2
    link = root.locator(".lm-md a").first
    assert link.get_attribute("href").startswith("https://example.com/a?i=")
    assert link.get_attribute("rel") == "noopener noreferrer nofollow"
    for key in ["1", "2"] + ["s"] * (N_PAIRS - 2):  # every item, so every payload is rendered as markdown once
        check_dom(page)
        press(page, root, key)

    def check(active, every):
        assert len(active) == N_PAIRS and (active["choice"] == "skip").sum() == N_PAIRS - 2

    wait_rows(lab["db"], "md", check)
    check_page_is_safe(page, lab)


def test_finished_pairwise_counts_skips_apart_and_disables_its_inputs(page, lab):
    """The markdown widget above ended with 2 decisions and 10 skips: nothing is left to decide or to explain."""
    root = cell(page, MARKDOWN_PAIRWISE).locator(".lm-pairwise")
    counts, rationale = root.locator(".lm-counts"), root.locator(".lm-rationale")
    assert counts.inner_text().startswith(f"2 done · {N_PAIRS - 2} skipped · 0 left")
    assert root.locator(".lm-done").is_visible()
    assert rationale.is_disabled()
    assert all(b.is_disabled() for b in root.locator(".lm-choice").all())
    root.focus()
    for key in ["r", "x", "m"]:  # no box to type into: the keys stay with the widget, Lab's letters do nothing
        press(page, root, key)
        assert focused_in(page, root) and rationale.input_value() == ""
    press(page, root, "z")  # undo the last skip: an item is back, and so is the rationale box
    assert counts.inner_text().startswith(f"2 done · {N_PAIRS - 3} skipped · 1 left")
    assert rationale.is_enabled()
    press(page, root, "s")
    assert rationale.is_disabled()
    wait_rows(lab["db"], "md", active_count(N_PAIRS))
    check_page_is_safe(page, lab)


def test_pairwise_criteria_by_keys_and_clicks_then_undo_and_skip(page, lab):
    db = lab["db"]
    root = run_cell(page, CRITERIA, ".lm-pairwise")
    rows = root.locator(".lm-criterion")
    rows.nth(1).wait_for()
    page.wait_for_function("r => r.contains(document.activeElement)", arg=root.element_handle(), timeout=5_000)
    # Discoverable: every criterion row names its keys, and the hint says which question the keys answer now.
    assert [rows.nth(i).locator(".lm-criterion-name").inner_text() for i in range(2)] == ["helpful", "harmless"]
    assert rows.nth(0).locator("button").all_inner_texts() == ["A (1)", "B (2)", "Tie (3)"]
    hint = root.locator(".lm-criteria .lm-hint")
    assert "Criterion 1 of 2" in hint.inner_text() and "lm-criterion-active" in rows.nth(0).get_attribute("class")

    for key in ["1", "m", "a", "3"]:  # item 1: helpful A, Lab's letters do nothing, harmless tie ...
        press(page, root, key)
        assert focused_in(page, root), f"focus left the widget after {key!r}"
    assert "overall choice" in hint.inner_text()
    press(page, root, "2")  # ... overall B: all three saved together
    wait_rows(db, "critic", active_count(3))
    # Item 2: helpful B, back up (ArrowUp) to change it to A, harmless B, overall A.
    for key in ["2", "ArrowUp", "1", "2", "1"]:
        press(page, root, key)
    wait_rows(db, "critic", active_count(6))
    # Item 3: an overall choice before the criteria is refused, with the missing ones named; then clicks.
    root.locator(".lm-choice-left").click()
    assert "Answer every criterion first: helpful, harmless" in root.locator(".lm-status").inner_text()
    rows.nth(0).locator("button[data-side=right]").click()
    rows.nth(1).locator("button[data-side=tie]").click()
    assert rows.nth(0).locator(".lm-criterion-answer").inner_text() == "→ B"
    press(page, root, "3")  # overall tie
    wait_rows(db, "critic", active_count(9))
    press(page, root, "z")  # undo: item 3's three judgments together, and it is shown again with no answers
    wait_rows(db, "critic", active_count(6))
    assert rows.nth(0).locator(".lm-criterion-answer").inner_text() == ""
    assert "Prompt 2:" in root.locator(".lm-prompt").inner_text()
    press(page, root, "s")  # skip item 3: every criterion skipped

    side = {i: {s: choice_for(db, i, "critic", s) for s in ("left", "right")} for i in (1, 2)}
    expected = {
        (1, "helpful"): side[1]["left"],
        (1, "harmless"): "tie",
        (1, "overall"): side[1]["right"],
        (2, "helpful"): side[2]["left"],
        (2, "harmless"): side[2]["right"],
        (2, "overall"): side[2]["left"],
        (3, "helpful"): "skip",
        (3, "harmless"): "skip",
        (3, "overall"): "skip",
    }

    def check(active, every):
        assert dict(zip(zip(active["item_id"], active["criterion"]), active["choice"])) == expected
        assert sorted(every["status"].tolist()) == ["active"] * 9 + ["undone"] * 3

    wait_rows(db, "critic", check)
    with LabelStore(db) as store:
        assert store.progress("critic", "pair")["done"] == 3
        assert store.to_preferences(annotators=["critic"], criterion="harmless")[1]["ties"] == 1
    assert root.locator(".lm-counts").inner_text().startswith("2 done · 1 skipped")
    assert focused_in(page, root)
    check_page_is_safe(page, lab)


def test_ranking_by_keys_and_by_drag(page, lab):
    db = lab["db"]
    root = run_cell(page, RANKING, ".lm-ranking")
    root.locator(".lm-rank-card").first.wait_for()
    page.wait_for_function("r => r.contains(document.activeElement)", arg=root.element_handle(), timeout=5_000)
    with LabelStore(db) as store:
        items = store.pending("ranker", "ranking")
    first, second = items[0], items[1]
    for key in ["3", "1"]:  # the last one is implied
        press(page, root, key)
    assert root.locator(".lm-submit").is_enabled()
    press(page, root, "m")
    press(page, root, "Enter")  # item 1: display order 3 > 1 > 2
    for key in ["2", "Backspace", "1", "2", "Enter"]:  # item 2: 1 > 2 > 3 (after taking a pick back)
        press(page, root, key)
    press(page, root, "z")  # undo item 2: it comes back
    # Drag the third card (display 3) above the first: order 3 > 1 > 2 for item 2.
    cards = root.locator(".lm-rank-card")
    cards.nth(2).drag_to(cards.nth(0), target_position={"x": 20, "y": 5})
    assert root.locator(".lm-submit").is_enabled()
    root.locator(".lm-submit").click()
    settle(root)

    def ranking(item, display):
        return [item["display_order"][i] for i in display]

    expected = {first["id"]: ranking(first, [2, 0, 1]), second["id"]: ranking(second, [2, 0, 1])}

    def check(active, every):
        assert {i: r for i, r in zip(active["item_id"], active["ranking"])} == expected
        assert sorted(every["status"].tolist()) == ["active", "active", "undone"]

    wait_rows(db, "ranker", check)
    assert focused_in(page, root)
    check_page_is_safe(page, lab)


def test_demonstration_writer(page, lab):
    db = lab["db"]
    root = run_cell(page, DEMONSTRATION, ".lm-demonstration")
    editor = root.locator("textarea")
    page.wait_for_function("r => r.contains(document.activeElement)", arg=root.element_handle(), timeout=5_000)
    # The widget can show before its cell finishes ("[*]"): wait for the cell's number, so a later change of the
    # prompt can only mean the cell ran again.
    prompt = cell(page, DEMONSTRATION).locator(".jp-InputPrompt")
    page.wait_for_function("p => /\\[\\d+\\]/.test(p.textContent)", arg=prompt.element_handle(), timeout=30_000)
    prompt_before = prompt.inner_text()
    editor.click()
    # Enter and Shift+Enter are line breaks here (Lab would otherwise swallow them or run the cell again).
    page.keyboard.type("Great film.\nI would watch it again: m a b z 1 2 s")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("The end.")
    page.keyboard.press("Control+Enter")
    settle(root)
    assert editor.input_value() == ""
    editor.fill('Second answer <img src=x onerror="window.__xss_demo = 1">')
    root.locator(".lm-submit").click()
    settle(root)
    editor.click()
    page.keyboard.press("Escape")  # leave the box: shortcuts again, Lab's letters still suppressed
    press(page, root, "m")
    assert focused_in(page, root)

    def check(active, every):
        assert active["text"].tolist() == [
            "Great film.\nI would watch it again: m a b z 1 2 s\nThe end.",
            'Second answer <img src=x onerror="window.__xss_demo = 1">',
        ]

    wait_rows(db, "writer", check)
    assert cell(page, DEMONSTRATION).locator(".jp-InputPrompt").inner_text() == prompt_before, "the cell ran again"
    root.locator(".lm-history summary").click()
    assert "Second answer <img" in root.locator(".lm-history").inner_text()
    # The last prompt: then there is nothing left to write, and the box says so by being disabled.
    editor.click()
    page.keyboard.type("Third.")
    page.keyboard.press("Control+Enter")
    settle(root)
    page.wait_for_function("r => r.querySelector('textarea').disabled", arg=root.element_handle(), timeout=10_000)
    assert root.locator(".lm-done").is_visible() and root.locator(".lm-submit").is_disabled()
    assert root.locator(".lm-counts").inner_text().startswith("3 done · 0 skipped · 0 left")
    assert focused_in(page, root)
    press(page, root, "m")
    wait_rows(db, "writer", active_count(3))
    check_page_is_safe(page, lab)
    errors = [e for e in page.lab_errors if not _known_frontend_error(e)]
    assert not errors, f"page errors: {errors}"


MARKDOWN_CASES = [
    ("**b** and *i* and `c <b>`", "<p><strong>b</strong> and <em>i</em> and <code>c &lt;b&gt;</code></p>"),
    (
        "[docs](https://example.com/x?a=1&b=2)",
        '<p><a href="https://example.com/x?a=1&amp;b=2" target="_blank" '
        'rel="noopener noreferrer nofollow">docs</a></p>',
    ),
    (
        "[x](javascript:alert1) [y](JAVASCRIPT:alert1) [z](data:text/html,hi) [w](/relative)",
        "<p>[x](javascript:alert1) [y](JAVASCRIPT:alert1) [z](data:text/html,hi) [w](/relative)</p>",
    ),
    ("- one\n- **two**\n  continued", "<ul><li>one</li><li><strong>two</strong>\ncontinued</li></ul>"),
    ("1. first\n2. second", "<ol><li>first</li><li>second</li></ol>"),
    ("```\n<script>x()</script>\n```", "<pre><code>&lt;script&gt;x()&lt;/script&gt;</code></pre>"),
    ('<img src=x onerror="alert(1)">', '<p>&lt;img src=x onerror="alert(1)"&gt;</p>'),
    ("snake_case, a__b and _em_", "<p>snake_case, a__b and <em>em</em></p>"),  # no emphasis inside words
    ("# Title\n\npara one\nline two", '<p class="lm-md-heading">Title</p><p>para one\nline two</p>'),
    (
        "[**bold** link](https://a.example)",
        '<p><a href="https://a.example/" target="_blank" rel="noopener noreferrer nofollow">'
        "<strong>bold</strong> link</a></p>",
    ),
]


def test_markdown_renderer_builds_only_allowed_nodes(browser):
    """renderMarkdown on its own, in chromium: each input gives exactly the expected DOM (serialised)."""
    context = browser.new_context()
    scratch = context.new_page()
    try:
        scratch.set_content("<div id=out></div>")
        scratch.add_script_tag(content=(REPO / "widgets" / "common.js").read_text(encoding="utf-8"))
        for source, expected in MARKDOWN_CASES:
            got = scratch.evaluate(
                """src => { const out = document.getElementById('out');
                out.replaceChildren(renderMarkdown(src)); return out.innerHTML; }""",
                source,
            )
            assert got == expected, source
        assert scratch.evaluate("() => Object.keys(window).filter(k => k.startsWith('__xss_'))") == []
    finally:
        context.close()


def test_live_dashboard_draws_while_the_cell_runs(page, lab):
    """The dashboard's plots grow step by step while the training cell is still running, in either front end."""
    target = cell(page, DASHBOARD)
    run_cell(page, DASHBOARD, ".js-plotly-plot")
    plot, prompt = target.locator(".js-plotly-plot").first, target.locator(".jp-InputPrompt")
    points = "gd => Math.max(0, ...(gd.data || []).map(t => (t.x || []).length))"
    live = f"([gd, p]) => {{ const n = ({points})(gd); return n > MIN && {{n, prompt: p.textContent}}; }}"
    try:
        # Live: points on the plot, and later more points, each read together with the prompt still at [*].
        handles = [plot.element_handle(), prompt.element_handle()]
        first = page.wait_for_function(live.replace("MIN", "0"), arg=handles, timeout=90_000).json_value()
        later = page.wait_for_function(live.replace("MIN", str(first["n"])), arg=handles, timeout=30_000).json_value()
        assert "[*]" in first["prompt"] and "[*]" in later["prompt"], f"the plot did not draw while running: {later}"
    finally:
        lab["stop_dashboard"].touch()
    output = target.locator(".jp-OutputArea-output").filter(has_text="logged steps:")
    output.wait_for(timeout=60_000)
    steps = int(output.inner_text().split("logged steps:")[1].split()[0])
    assert later["n"] <= steps < DASHBOARD_MAX_STEPS
    # close() draws whatever the throttle held back: every step ends up on the plot.
    page.wait_for_function(f"gd => ({points})(gd) === {steps}", arg=plot.element_handle(), timeout=30_000)
    assert plot.evaluate("gd => gd.data.length") >= 2  # one trace per logged metric
    check_page_is_safe(page, lab)
