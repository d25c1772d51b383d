"""Label store latency: Python-side time per judgment, and time to open a 10,000-item store at the first pending
window. Targets (issue 4): under 50 ms per judgment, under 1 s to open 10,000 items.

    .venv/bin/python bench/label_store.py [--items 10000] [--records 300] [--dir /path/on/the/disk/to/measure]

Prints the numbers and saves them to bench/results/label_store.json. The store file lives in a temporary folder
(under --dir when given): commit latency is mostly the fsync of that disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlhfkit.labeling.store import LabelStore  # noqa: E402


def ms(seconds: list[float]) -> dict:
    values = sorted(s * 1000 for s in seconds)
    return {
        "median_ms": statistics.median(values),
        "p95_ms": values[int(0.95 * (len(values) - 1))],
        "mean_ms": statistics.fmean(values),
        "max_ms": values[-1],
        "n": len(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--dir", default=None, help="folder for the temporary store (default: the system temp)")
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="label_store_bench_", dir=args.dir)
    path = Path(folder) / "labels.db"
    results: dict = {
        "items": args.items,
        "store": str(path),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }

    # Set-up: N pair items of realistic size (a prompt and two ~60-word responses), half of them already labelled
    # by the annotator who reopens the store (the resume case), so the first window has to skip 5,000 judged items.
    words = "the film was a quiet and careful study of grief with two fine lead performances and a weak ending".split()
    rows = [
        {
            "prompt": f"Write a short review of item {i}.",
            "response_a": " ".join(words[(i + k) % len(words)] for k in range(60)) + f" ({i}a)",
            "response_b": " ".join(words[(i * 7 + k) % len(words)] for k in range(60)) + f" ({i}b)",
        }
        for i in range(args.items)
    ]
    t = time.perf_counter()
    with LabelStore(path) as store:
        ids = store.add_pairs(rows)
        results["add_items_s"] = time.perf_counter() - t
        store.record_many([{"item_id": i, "annotator": "resumer", "choice": "a"} for i in ids[: args.items // 2]])
    results["file_mb"] = path.stat().st_size / 1e6

    # Open + first pending window, in this process (repeated) and in a fresh process (including the import).
    opens = {}
    for who in ("resumer", "newcomer"):
        times = []
        for _ in range(5):
            t = time.perf_counter()
            store = LabelStore(path)
            window = store.pending(who, "pair", limit=20)
            times.append(time.perf_counter() - t)
            store.close()
            assert len(window) == 20
        opens[who] = ms(times)
    results["open_and_first_window"] = opens
    code = (
        "import time; t = time.perf_counter(); from rlhfkit.labeling.store import LabelStore; "
        f"s = LabelStore({str(path)!r}); w = s.pending('resumer', 'pair', limit=20); "
        "print(time.perf_counter() - t)"
    )
    cold = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout)
        for _ in range(3)
    ]
    results["fresh_process_import_open_first_window"] = ms(cold)

    # Per judgment: record() alone (commit + fsync), and the whole Python side of one click in a widget:
    # record, then the next window, progress and recent history.
    with LabelStore(path) as store:
        todo = store.pending("clicker", "pair", limit=2 * args.records)
        record_t, cycle_t = [], []
        for k, it in enumerate(todo):
            t = time.perf_counter()
            store.record(
                it["id"],
                "clicker",
                choice="ab"[k % 2],
                display_order=it["display_order"],
                rationale="clearer" if k % 3 == 0 else None,
                seconds=2.0,
                event_id=f"ev-{k}",
            )
            t_rec = time.perf_counter() - t
            if k < args.records:
                record_t.append(t_rec)
            else:
                store.pending("clicker", "pair", limit=20, after_id=it["id"])
                store.progress("clicker", "pair")
                store.history("clicker", limit=10)
                cycle_t.append(time.perf_counter() - t)
        results["record"] = ms(record_t)
        results["widget_cycle"] = ms(cycle_t)
        t = time.perf_counter()
        store.undo("clicker")
        results["undo_ms"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        rows_out, _ = store.to_preferences()
        results["to_preferences_s"] = time.perf_counter() - t
        results["to_preferences_rows"] = len(rows_out)
        assert store.integrity_check() == "ok"

    results["targets"] = {
        "record_under_50ms": results["widget_cycle"]["p95_ms"] < 50,
        "open_10k_under_1s": max(
            opens["resumer"]["max_ms"], results["fresh_process_import_open_first_window"]["max_ms"]
        )
        < 1000,
    }
    shutil.rmtree(folder)  # the 10 MB store was only a fixture
    out = ROOT / "bench" / "results" / "label_store.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")

    print(f"store: {args.items} pair items, {results['file_mb']:.1f} MB, added in {results['add_items_s']:.2f} s")
    for who, r in opens.items():
        print(f"open + first window of 20 ({who}): median {r['median_ms']:.1f} ms, max {r['max_ms']:.1f} ms")
    r = results["fresh_process_import_open_first_window"]
    print(f"fresh process, import + open + first window: median {r['median_ms']:.0f} ms, max {r['max_ms']:.0f} ms")
    for key, label in (
        ("record", "record() per judgment"),
        ("widget_cycle", "record + next window + progress + history per judgment"),
    ):
        r = results[key]
        print(
            f"{label}: median {r['median_ms']:.2f} ms, p95 {r['p95_ms']:.2f} ms, max {r['max_ms']:.2f} ms (n={r['n']})"
        )
    print(
        f"undo: {results['undo_ms']:.2f} ms; to_preferences of {results['to_preferences_rows']} rows: "
        f"{results['to_preferences_s'] * 1000:.0f} ms"
    )
    print(f"targets met: {results['targets']}")
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
