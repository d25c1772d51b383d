"""The label store under SIGKILL and under several processes at once, on real files.

Crash safety: a writer process prints each judgment id right after `record()` returns (its acknowledgement);
the test kills it with SIGKILL at random moments, many times. Every acknowledged judgment must be in the file
afterwards and SQLite's integrity check must pass.
Concurrency: four processes label the same store at once; counts add up exactly, nothing is lost or doubled.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from rlhfkit.labeling import LabelStore

REPO = Path(__file__).resolve().parents[1]

WRITER = r"""
import random, sys
from rlhfkit.labeling.store import LabelStore

path, annotator, seed, n_items = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
store = LabelStore(path)
print("ready", flush=True)
i = 0
while True:
    item = rng.randrange(1, n_items + 1)
    event = f"{annotator}-{seed}-{i}"
    choice = rng.choice(["a", "b", "tie", "skip"])
    jid = store.record(item, annotator, choice=choice, display_order=store.display_order(item, annotator),
                       event_id=event, seconds=rng.random(), rationale="x" * rng.randrange(0, 2000))
    print(f"ack {jid} {event} {item} {choice}", flush=True)  # acknowledged: record() has returned
    i += 1
    if i % 7 == 0:
        store.undo(annotator)  # the other write path
    if i % 25 == 0:
        new = store.add_pairs([{"prompt": f"new {seed} {i}", "response_a": "x", "response_b": "y"}])
        print(f"item {new[0]} new {seed} {i}", flush=True)
"""

WORKER = r"""
import json, sys, time
from rlhfkit.labeling.store import LabelStore

path, k, n_items, go_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rows = [{"prompt": f"prompt {i}", "response_a": f"first {i}", "response_b": f"second {i}"} for i in range(n_items)]
time.sleep(max(0.0, go_at - time.time()))  # all four start together, on a file none of them has created yet
store = LabelStore(path)
ids = store.add_pairs(rows)  # the same rows from every process: must dedupe across processes
acked = {"own": [], "shared": [], "race": []}
for n, item_id in enumerate(ids):
    acked["own"].append(store.record(item_id, f"p{k}", choice="ab"[n % 2], event_id=f"p{k}-{item_id}"))
    if n % 4 == k:  # the same annotator in four processes, on distinct items
        acked["shared"].append(store.record(item_id, "shared", choice="a", event_id=f"shared-{item_id}"))
    # the same annotator and event on the same item from all four (a double click across processes)
    acked["race"].append(store.record(item_id, "race", choice="b", event_id=f"race-{item_id}"))
print(json.dumps({"ids": ids, **acked}), flush=True)
"""


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _parse(out: bytes, acks: dict, items: dict) -> None:
    for line in out.decode(errors="replace").split("\n")[:-1]:  # the last piece may be a cut-off line
        parts = line.split(" ", 2)
        if parts[0] == "ack":
            jid, event, item, choice = line.split(" ")[1:]
            acks[int(jid)] = (event, int(item), choice)
        elif parts[0] == "item":
            items[int(parts[1])] = parts[2]


def test_sigkill_at_random_moments_loses_no_acknowledged_judgment(tmp_path):
    path = tmp_path / "labels.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    n_items = 200
    with LabelStore(path) as store:
        store.add_pairs([{"prompt": f"p{i}", "response_a": f"a{i}", "response_b": f"b{i}"} for i in range(n_items)])

    rng = random.Random(1234)
    acks: dict[int, tuple] = {}
    new_items: dict[int, str] = {}
    rounds, started = 25, time.monotonic()
    for round_ in range(rounds):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path), f"w{round_ % 3}", str(round_), str(n_items)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        try:
            if round_ % 5 == 4:
                time.sleep(rng.uniform(0.0, 0.15))  # may land while the store is still opening
            else:
                assert proc.stdout.readline() == b"ready\n", proc.stderr.read().decode()
                time.sleep(rng.uniform(0.0, 0.3))  # somewhere in the middle of writing
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
        _parse(out, acks, new_items)
    elapsed = time.monotonic() - started

    assert len(acks) >= rounds, f"only {len(acks)} acknowledged judgments in {rounds} rounds: nothing was tested"
    with LabelStore(path) as store:
        assert store.integrity_check() == "ok"
        table = store.judgments(active_only=False).set_index("id")
        missing = sorted(set(acks) - set(table.index))
        assert not missing, f"acknowledged judgments lost after SIGKILL: {missing[:10]}"
        for jid, (event, item, choice) in acks.items():
            row = table.loc[jid]
            assert (row.event_id, row.item_id, row.choice) == (event, item, choice)
        for item_id, prompt in new_items.items():
            assert store.item(item_id)["prompt"] == prompt
        # the invariants the unique indexes keep: one active judgment per (item, annotator), one row per event
        active = table[table.status == "active"]
        assert not active.duplicated(["item_id", "annotator"]).any()
        assert not table.dropna(subset=["event_id"]).duplicated(["annotator", "event_id"]).any()
    import sqlite3

    with sqlite3.connect(path) as raw:  # and a fresh connection that is not ours agrees
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    print(f"{rounds} kills, {len(acks)} acknowledged judgments, all present; {elapsed:.1f} s")


def test_four_processes_label_one_store_at_once(tmp_path):
    path = tmp_path / "labels.db"  # not created yet: the four race to create the schema as well
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    n_items, n_procs = 60, 4
    go_at = time.time() + 1.0
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(path), str(k), str(n_items), str(go_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        for k in range(n_procs)
    ]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode()[-3000:]
            results.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    ids = results[0]["ids"]
    assert all(r["ids"] == ids for r in results) and len(set(ids)) == n_items  # one set of items, no duplicates
    with LabelStore(path) as store:
        assert store.count("pair") == n_items
        table = store.judgments(active_only=False)
        assert (table.status == "active").all()  # nobody superseded anybody
        per_annotator = table.groupby("annotator").item_id.agg(["count", "nunique"])
        assert per_annotator.to_dict("index") == {
            **{f"p{k}": {"count": n_items, "nunique": n_items} for k in range(n_procs)},
            "shared": {"count": n_items, "nunique": n_items},
            "race": {"count": n_items, "nunique": n_items},
        }
        assert len(table) == (n_procs + 2) * n_items  # exactly: no lost writes, no duplicates
        acked = [jid for r in results for key in ("own", "shared", "race") for jid in r[key]]
        assert set(acked) == set(table.id)  # every acknowledged id is a row, every row was acknowledged
        assert all(r["race"] == results[0]["race"] for r in results)  # the raced event: one id for all four
        assert sum(len(r["shared"]) for r in results) == n_items
        assert store.integrity_check() == "ok"
