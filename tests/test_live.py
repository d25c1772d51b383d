"""The live dashboard: fed by a short TRL run (DPO) and a short PPO run, its figures hold exactly what
metrics.jsonl holds; from_run rebuilds the same figures from disk; headless it writes dashboard.html; widgets
(forced live, no front end attached) show the same data; throttling; escaping; front-end detection."""

import re
import time
from types import SimpleNamespace

import pytest

from rlhfkit.judges import VaderJudge
from rlhfkit.live import DASHBOARD_FILE, Dashboard, from_run, has_frontend, panels_for
from rlhfkit.runs import load
from rlhfkit.tiny import reviews_task
from rlhfkit.train.dpo import DPOSettings, train_dpo
from rlhfkit.train.ppo import PPOSettings, train_ppo

XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


@pytest.fixture(scope="module")
def task():
    return reviews_task()


@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory, tiny_path, task):
    """A 3-step DPO run (TRL's DPOTrainer) with the dashboard as its TrainerCallback, headless."""
    demos = task.demonstrations[:64]
    scores = VaderJudge()([d["prompt"] for d in demos], [d["completion"] for d in demos])
    good = [d for d, s in zip(demos, scores) if s > 0.3]
    bad = [d for d, s in zip(demos, scores) if s < -0.3]
    pairs = [
        {"prompt": g["prompt"], "chosen": g["completion"], "rejected": b["completion"]} for g, b in zip(good, bad)
    ][:12]
    dash = Dashboard(live=False)  # stage and run directory come from the trainer
    out = tmp_path_factory.mktemp("live") / "dpo"
    run = train_dpo(
        tiny_path,
        pairs,
        DPOSettings(
            max_steps=3,
            batch_size=4,
            warmup_steps=0,
            n_samples=2,
            sample_max_new_tokens=12,
            device="cpu",
            trl_overrides={"disable_tqdm": True},
        ),
        out,
        task=task,
        callbacks=[dash],
    )
    return run, dash


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory, task):
    """A 3-step run of our PPO with the dashboard as its plain callback, headless; train_ppo closes it at the end
    (no `with` block), which writes dashboard.html."""
    out = tmp_path_factory.mktemp("live") / "ppo"
    settings = PPOSettings(
        total_steps=3, batch_size=8, max_new_tokens=16, num_ppo_epochs=1, num_samples=2, progress=False, device="cpu"
    )
    dash = Dashboard(run_dir=out, live=False)
    run = train_ppo("tiny", VaderJudge(), task.train_prompts[:32], settings, run_dir=out, callbacks=[dash])
    return run, dash


def _plotted(fig) -> dict[str, tuple[list, list]]:
    """name -> (x, y) of every line trace of a figure."""
    return {t.name: (list(t.x), list(t.y)) for t in fig.data if t.type == "scatter"}


def _assert_matches_metrics(dash: Dashboard, run_dir):
    """Every plotted line is the metric of that name in metrics.jsonl, step for step, value for value."""
    metrics = load(run_dir).metrics
    plotted = _plotted(dash.figure())
    assert plotted, "nothing plotted"
    for key, (x, y) in plotted.items():
        rows = metrics[["step", key]].dropna()
        assert x == rows.step.tolist(), key
        assert y == rows[key].tolist(), key
    # and every panel metric the run logged is plotted
    logged = {k for p in dash.panels for k in p.keys if k in metrics}
    assert logged == set(plotted)


# --- TRL stage: a TrainerCallback --------------------------------------------------------------------------------


def test_dpo_dashboard_receives_trl_logs_matching_metrics_jsonl(dpo_run):
    run, dash = dpo_run
    assert dash.stage == "dpo" and dash.run_dir == run.path  # found from TRL's output_dir (run/checkpoints)
    assert [p.title for p in dash.panels] == [p.title for p in panels_for("dpo")]
    _assert_matches_metrics(dash, run.path)
    assert dash.series("rewards/margins")[0] == [1, 2, 3]
    assert {"loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} <= set(
        _plotted(dash.figure())
    )


def test_headless_trl_run_writes_a_self_contained_dashboard(dpo_run):
    run, dash = dpo_run
    page = (run.path / DASHBOARD_FILE).read_text()
    assert page.count("plotly.js v") <= 1 and "Plotly.newPlot" in page  # plotly.js inlined once
    assert not re.search(r'<script[^>]+src="http', page)
    # the samples DPO wrote before training (read from samples.jsonl as they appeared) are in it
    before = run.samples[run.samples.when == "before"]
    assert len(before) == 2 and dash.pages[0][1] == 0 and len(dash.pages[0][2]) == 2
    assert "Samples, newest first" in page and ">before<" in page


def test_from_run_rebuilds_the_same_dpo_figure(dpo_run):
    run, dash = dpo_run
    again = from_run(run.path, live=False)
    assert again.stage == "dpo"
    assert _plotted(again.figure()) == _plotted(dash.figure())
    # the samples written after training (after on_train_end) are on disk, so from_run shows them too
    assert [step for _, step, _ in again.pages] == sorted(set(run.samples.step))


# --- our PPO: a plain callable ----------------------------------------------------------------------------------


def test_ppo_dashboard_matches_metrics_and_samples(ppo_run):
    run, dash = ppo_run
    assert dash.stage == "ppo"  # from the metric names
    _assert_matches_metrics(dash, run.path)
    assert {
        "objective/scores",
        "objective/rlhf_reward",
        "objective/kl",
        "policy/entropy_avg",
        "loss/policy_avg",
        "loss/value_avg",
        "policy/clipfrac_avg",
        "lr",
    } <= set(_plotted(dash.figure()))
    # one page of samples per step, the rows samples.jsonl holds
    assert [step for _, step, _ in dash.pages] == [1, 2, 3]
    recorded = [(r["step"], r["prompt"], r["response"], r["score"]) for _, _, rows in dash.pages for r in rows]
    on_disk = list(run.samples[["step", "prompt", "response", "score"]].itertuples(index=False, name=None))
    assert recorded == on_disk
    assert 0 < dash.seconds < 5


def test_headless_ppo_writes_dashboard_on_close_and_from_run_matches(ppo_run):
    run, dash = ppo_run
    assert (run.path / DASHBOARD_FILE).exists()
    again = from_run(run.path, live=False)
    assert again.stage == "ppo"
    assert _plotted(again.figure()) == _plotted(dash.figure())
    assert [(s, len(rows)) for _, s, rows in again.pages] == [(s, len(rows)) for _, s, rows in dash.pages]


def test_from_run_overlays_several_runs(ppo_run, dpo_run):
    ppo, dpo = ppo_run[0], dpo_run[0]
    both = from_run([ppo.path, dpo.path], live=False)
    names = set(_plotted(both.figure()))
    assert "ppo: objective/scores" in names and "dpo: rewards/margins" in names
    titles = [p.title for p in both.panels]
    assert titles[: len(panels_for("ppo"))] == [p.title for p in panels_for("ppo")] and "reward margin" in titles
    first, second = both.figure().data[0], both.figure().data[1]
    assert first.name.startswith("ppo:") and second.name.startswith("ppo:")
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        from_run([ppo.path, ppo.path.parent / "missing"])


# --- widgets (forced live: no front end is attached, the widgets still update) -----------------------------------


def test_live_widgets_show_the_same_data_and_page_through_samples(ppo_run):
    run, _ = ppo_run
    steps = load(run.path)
    dash = Dashboard(live=True, min_interval=0.0, sample_every=1)
    for row in steps.metrics.to_dict("records"):
        step = int(row.pop("step"))
        samples = steps.samples[steps.samples.step == step].drop(columns="step").to_dict("records")
        dash(step, row, samples)
    dash.close()
    view = dash._view
    widget = {t.name: (list(t.x), list(t.y)) for t in view.figure.data if t.type == "scatter"}
    assert widget == _plotted(dash.figure())
    assert view.pager.max == 3 and view.pager.value == 3
    view.pager.value = 1  # page back: the table shows step 1 and stops following new steps
    assert "step 1" in view.table.value and not view.following
    dash(4, {"objective/scores": 1.0}, [{"prompt": "p", "response": XSS, "score": 0.5}])
    dash.refresh()
    assert "step 1" in view.table.value and view.pager.max == 4
    view.pager.value = 4
    assert "&lt;script&gt;window.__pwned=1" in view.table.value
    assert "<script>window" not in view.table.value and "<img src=x" not in view.table.value


def test_redraws_are_throttled():
    dash = Dashboard(live=True, min_interval=60.0)
    draws = []
    original = dash._draw
    dash._draw = lambda: (draws.append(1), original())
    for step in range(1, 201):
        dash(step, {"objective/scores": 0.1 * step, "objective/kl": 0.0})
    assert len(draws) == 1  # the first step drew; the other 199 were only appended
    assert dash.series("objective/scores")[0] == list(range(1, 201))
    dash.close()  # the end draws what is pending
    assert len(draws) == 2 and len(dash._view.figure.data[0].x) == 200


def test_a_slow_redraw_pushes_the_next_one_back_to_stay_within_budget(monkeypatch):
    from rlhfkit import live

    update = live._LiveView.update
    monkeypatch.setattr(live._LiveView, "update", lambda self, d: (time.sleep(0.02), update(self, d)))
    dash = Dashboard(live=True, min_interval=0.0, budget=0.05)
    draws = []
    original = dash._draw
    dash._draw = lambda: (draws.append(1), original())
    dash(1, {"loss": 1.0})  # the first call also creates the widgets (a one-time cost, not a redraw)
    start, step = time.perf_counter(), 1
    while time.perf_counter() - start < 0.3:  # a 20 ms redraw may come again only 0.4 s later
        step += 1
        dash(step, {"loss": 1.0 / step})
    assert len(draws) == 1 and step > 10


def test_creating_the_widgets_does_not_count_as_a_redraw(monkeypatch):
    """The first FigureWidget of a kernel takes seconds (plotly imports its renderers): a one-time cost that must
    not push the next redraw past the end of a short run (seen in JupyterLab before this was split out)."""
    from rlhfkit import live

    add_plots = live._LiveView.add_plots
    monkeypatch.setattr(live._LiveView, "add_plots", lambda *a: (time.sleep(0.3), add_plots(*a)))
    dash = Dashboard(live=True, min_interval=0.0, budget=0.05)
    dash(1, {"loss": 1.0})
    assert dash.seconds >= 0.3  # counted as time spent in the dashboard ...
    assert dash._next_draw - time.perf_counter() < 0.3 / 0.05 / 2  # ... but not as a redraw's cost


# --- escaping, headless files, detection ---------------------------------------------------------------------------


def test_model_text_is_escaped_in_tables_and_files(tmp_path):
    with Dashboard(run_dir=tmp_path, live=False) as dash:
        dash(1, {"objective/scores": 0.5}, [{"prompt": "Review <b>X</b>", "response": XSS, "score": 0.1}])
    page = (tmp_path / DASHBOARD_FILE).read_text()
    for html_text in (page, dash.samples_html()):
        assert "window.__pwned" in html_text  # the text is there, as text ...
        assert "<script>window.__pwned" not in html_text and "<img src=x" not in html_text  # ... never as markup
        assert "Review &lt;b&gt;X&lt;/b&gt;" in html_text


def test_headless_without_run_dir_writes_nothing_and_never_breaks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dash = Dashboard(live=False)
    dash(1, {"loss": 1.0})
    assert dash.close() is None and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="run directory"):
        dash.save()
    assert dash.save(tmp_path / "d.html").exists()


def test_frontend_detection(monkeypatch):
    import IPython

    assert has_frontend() is False  # pytest: no kernel
    assert Dashboard().live is False

    def kernel(allow_stdin, comm=True):
        parent = {"content": {"allow_stdin": allow_stdin}}
        k = SimpleNamespace(comm_manager=object() if comm else None, get_parent=lambda channel="shell": parent)
        return SimpleNamespace(kernel=k)

    for shell, expected in (
        (kernel(True), True),  # JupyterLab / Notebook / VS Code
        (kernel(False), False),  # nbclient / papermill
        (kernel(True, comm=False), False),  # a kernel that cannot reach widgets
        (SimpleNamespace(), False),
    ):  # a terminal IPython
        monkeypatch.setattr(IPython, "get_ipython", lambda s=shell: s)
        assert has_frontend() is expected
    monkeypatch.setattr(IPython, "get_ipython", lambda: kernel(True))
    assert Dashboard(live=False).live is False  # live=False forces headless


def test_stage_comes_from_the_trl_config_or_the_metric_names(tmp_path):
    DPOConfig = type("DPOConfig", (), {})
    args = DPOConfig()
    args.output_dir = str(tmp_path / "out")
    state = SimpleNamespace(is_world_process_zero=True, global_step=0)
    dash = Dashboard(live=False)
    dash.on_train_begin(args, state, None)
    assert dash.stage == "dpo" and dash.run_dir == tmp_path / "out"
    sft = Dashboard(live=False)
    sft(1, {"loss": 1.2, "mean_token_accuracy": 0.4})
    assert [p.title for p in sft.panels] == ["loss", "token accuracy"]
    reward = Dashboard(live=False)
    reward(1, {"loss": 0.7, "accuracy": 0.5, "margin": 0.1})
    assert reward.panels == panels_for("reward")


@pytest.mark.slow
def test_in_a_real_kernel_nbclient_requests_are_headless_and_interactive_ones_live(tmp_path):
    """Against a real ipykernel. nbclient (and papermill) execute with allow_stdin=False (nbclient/client.py sets
    kc.allow_stdin = False): the dashboard is headless there and writes its file. A client that allows stdin, as
    JupyterLab, Notebook and VS Code do, counts as a front end."""
    from jupyter_client.manager import start_new_kernel

    code = (
        f"from rlhfkit.live import Dashboard, has_frontend\n"
        f"with Dashboard(run_dir={str(tmp_path)!r}) as dash:\n"
        f"    for step in range(1, 4):\n"
        f"        dash(step, {{'objective/scores': 0.1 * step}}, [{{'prompt': 'p', 'response': 'r', 'score': 1}}])\n"
        f"print('live', dash.live)"
    )
    manager, client = start_new_kernel(kernel_name="python3")
    try:

        def run(source, allow_stdin):
            printed = []
            reply = client.execute_interactive(
                source,
                allow_stdin=allow_stdin,
                timeout=120,
                output_hook=lambda msg: printed.append(msg["content"]["text"]) if msg["msg_type"] == "stream" else None,
            )
            assert reply["content"]["status"] == "ok", reply["content"]
            return "".join(printed).strip()

        assert run(code, allow_stdin=False) == "live False"
        assert (tmp_path / DASHBOARD_FILE).exists()
        assert run("print(has_frontend())", allow_stdin=True) == "True"
        assert run("print(has_frontend())", allow_stdin=False) == "False"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_from_run_redraws_an_interrupted_run_with_a_torn_last_line(tmp_path):
    from rlhfkit.runs import Run

    run = Run(tmp_path / "ppo", stage="ppo", config={})
    for step in (1, 2, 3):
        run.log(step, {"objective/scores": 0.1 * step, "objective/kl": float(step)})
        run.log_samples(step, [{"prompt": "p", "response": XSS, "score": 0.5}])
    run.set_status("interrupted", "stopped by KeyboardInterrupt")
    with (tmp_path / "ppo" / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "objective/sco')  # a process killed mid-write
    dash = from_run(tmp_path / "ppo", live=False)
    assert dash.series("objective/scores") == ([1, 2, 3], [0.1, 0.2, 0.30000000000000004])
    assert [step for _, step, _ in dash.pages] == [1, 2, 3]
    page = dash.save().read_text()
    assert "<img src=x" not in page and "&lt;img src=x" in page


# --- what a person sees: axes, ticks, legends, and names shown as written ------------------------------------------

HOSTILE = '<a href="https://x">x</a> "q" & <img src=x onerror=window.__pwned=1> $x$'
PPO_STEP = {
    "objective/scores": 0.1,
    "objective/rlhf_reward": 0.09,
    "objective/kl": 0.02,
    "policy/entropy_avg": 1.9,
    "loss/policy_avg": -0.01,
    "loss/value_avg": 0.5,
    "policy/clipfrac_avg": 0.01,
    "lr": 2e-4,
}


def test_each_panel_has_titled_axes_whole_step_ticks_and_a_legend_of_its_own():
    dash = Dashboard(live=False)
    for step in (1, 2):  # a short run: plotly's own ticks would put 1.5 between the two steps
        dash(step, PPO_STEP)
    fig = dash.figure()
    assert len(dash.panels) == 6
    for p, panel in enumerate(dash.panels):
        n = "" if p == 0 else str(p + 1)
        x, y = fig.layout[f"xaxis{n}"], fig.layout[f"yaxis{n}"]
        assert x.title.text == "step" and y.title.text == panel.y and panel.y
        assert (x.tickmode, x.tick0, x.dtick, x.tickformat) == ("linear", 0, 1, "d")
        # each panel's traces sit on its axes and in its own legend, placed under it
        traces = [t for t in fig.data if t.xaxis == f"x{n}"]
        assert traces and {t.legend for t in traces} == {f"legend{n}"} and {t.yaxis for t in traces} == {f"y{n}"}
        legend = fig.layout[f"legend{n}"]
        assert legend.x == x.domain[0] and legend.y < y.domain[0]
    assert fig.layout.showlegend is True
    assert len({(fig.layout[f"legend{n}"].x, fig.layout[f"legend{n}"].y) for n in ("", 2, 3, 4, 5, 6)}) == 6
    # a longer run gets fewer, still whole, steps between ticks
    for step in range(3, 201):
        dash(step, PPO_STEP)
    assert dash.figure().layout.xaxis.dtick == 50


def test_a_constant_learning_rate_is_drawn_at_its_value(tmp_path):
    from plotly_in_chromium import look_at

    with Dashboard(run_dir=tmp_path, live=False, stage="ppo") as dash:
        for step in (1, 2, 3):
            dash(step, PPO_STEP)
    lr = [p for p, panel in enumerate(dash.panels) if panel.title == "learning rate"][0] + 1
    axis = dash.figure().layout[f"yaxis{lr}"]
    assert axis.rangemode == "tozero" and axis.exponentformat == "e"
    # as plotly lays it out in a browser: 2e-4 inside the range, and the range on its scale (not -1..1)
    low, high = look_at(tmp_path / DASHBOARD_FILE)["axes"][0][f"yaxis{lr}"]["range"]
    assert low <= 0 and 2e-4 < high < 5e-4


def test_names_with_markup_quotes_and_ampersands_show_as_written(tmp_path):
    """A title and a sample label (a histogram's legend entry) carrying a link, an image with a handler, quotes,
    an ampersand and TeX: plotly gets them escaped once, for its own markup, and a browser shows the text."""
    from plotly_in_chromium import look_at
    from rlhfkit.figures import plotly_text

    with Dashboard(run_dir=tmp_path, live=False, stage="reward", title=f"RM {HOSTILE}") as dash:
        dash(
            1,
            {"loss": 0.6, "accuracy": 0.7, "margin": 0.2},
            [{"prompt": "p", "response": "r", "reward": 0.1 * i, "label": HOSTILE} for i in range(5)],
        )
    fig = dash.figure()
    assert fig.layout.title.text == f"RM {plotly_text(HOSTILE)}"
    assert '&lt;a href="https://x"&gt;x&lt;/a&gt; "q" &amp; &lt;img' in fig.layout.title.text  # quotes untouched
    (histogram,) = [t for t in fig.data if t.type == "histogram"]
    assert histogram.name == plotly_text(HOSTILE) and "&quot;" not in histogram.name
    seen = look_at(tmp_path / DASHBOARD_FILE)
    assert seen["pwned"] is None and seen["links"] == 0 and seen["images"] == 0 and seen["page_images"] == 0
    assert f"RM {HOSTILE}" in seen["texts"] and HOSTILE in seen["texts"]  # title and legend entry, as written
    assert not any("&quot;" in t or "&amp;" in t or "&lt;" in t for t in seen["texts"])
    assert seen["page_text"].count(HOSTILE) >= 2  # the page's heading and the sample table, escaped once


def test_live_widgets_space_whole_step_ticks_as_the_run_grows():
    dash = Dashboard(live=True, min_interval=0.0)
    dash(1, PPO_STEP)
    figure = dash._view.figure
    assert figure.layout.xaxis.dtick == 1 and figure.layout.xaxis.title.text == "step"
    assert {t.legend for t in figure.data} == {"legend", *(f"legend{n}" for n in range(2, 7))}
    for step in range(2, 41):
        dash(step, PPO_STEP)
    dash.close()
    assert figure.layout.xaxis.dtick == figure.layout.xaxis6.dtick == 10
    assert len(figure.data[0].x) == 40


def test_samples_show_at_once_and_plots_join_when_plotly_has_loaded(monkeypatch):
    """plotly's widget import (seconds, once per kernel) runs in a background thread: until it is done the dashboard
    shows its status line and samples and does not wait; the plots come at the first step after it, and the end of
    the run waits for them."""
    from rlhfkit import live

    ready = {"now": False}
    monkeypatch.setattr(live, "_plots_ready", lambda wait=False: ready["now"] or wait)
    dash = Dashboard(live=True, min_interval=60.0, sample_every=1)
    dash(1, PPO_STEP, [{"prompt": "p", "response": "first", "score": 0.5}])
    view = dash._view
    assert view.figure is None and "plots loading" in view.status.value and "first" in view.table.value
    dash(2, PPO_STEP)
    assert view.figure is None  # not ready: nothing waited, nothing drawn (the next redraw is 60 s away)
    ready["now"] = True
    dash(3, PPO_STEP)  # ready: drawn at once, not 60 s later
    assert view.figure is not None and view.figure in view.box.children and len(view.figure.data[0].x) == 3
    assert "plots loading" not in view.status.value


def test_a_run_that_ends_before_plotly_has_loaded_still_ends_with_its_plots(monkeypatch):
    from rlhfkit import live

    waited = []
    monkeypatch.setattr(live, "_plots_ready", lambda wait=False: waited.append(wait) or wait)
    dash = Dashboard(live=True, min_interval=0.0)
    dash(1, PPO_STEP)
    assert dash._view.figure is None
    dash.close()
    assert waited[-1] is True and len(dash._view.figure.data[0].x) == 1
