"""Open an HTML page holding plotly figures in headless Chromium and report what a person would see: every text
plotly drew, links and images inside the plots, whether an injected handler ran (window.__pwned), and each
axis's type and range as plotly computed them. Used by the dashboard's and the report's escaping tests."""

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

_PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const plots = [...document.querySelectorAll(".js-plotly-plot")];
  const out = {pwned: window.__pwned === undefined ? null : String(window.__pwned), plots: plots.length,
               links: 0, images: 0, texts: [], axes: [], page_images: document.querySelectorAll("img").length,
               page_text: document.body.innerText};
  for (const plot of plots) {
    out.links += plot.querySelectorAll("svg a").length;  // plotly's <a href> pseudo-HTML becomes an svg link
    out.images += plot.querySelectorAll("img, svg image").length;
    plot.querySelectorAll("svg text").forEach(t => out.texts.push(t.textContent));
    const axes = {};
    for (const [key, axis] of Object.entries(plot._fullLayout || {}))
      if (/^[xy]axis\\d*$/.test(key)) axes[key] = {type: axis.type, range: axis.range};
    out.axes.push(axes);
  }
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 500));
</script>"""


def look_at(page: Path) -> dict:
    """What headless Chromium shows of `page` (a copy with a probe script added; the page itself is untouched)."""
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "page.html"
        copy.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
        done = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-sync",
                "--disable-background-networking",
                "--disable-component-update",
                f"--user-data-dir={tmp}/profile",
                "--virtual-time-budget=10000",
                "--dump-dom",
                copy.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, flags=re.S)
    assert found, f"the probe did not run: {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))
