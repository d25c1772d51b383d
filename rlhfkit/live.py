"""The live dashboard: reward, KL, losses and samples while a stage trains, in the notebook that runs it.

    dash = Dashboard()                                   # one per training run
    train_dpo(..., callbacks=[dash])                     # a transformers TrainerCallback (SFT, reward, DPO, RLOO, GRPO)
    with Dashboard(run_dir="runs/ppo") as dash:          # and a plain callable dash(step, metrics, samples)
        train_ppo(..., run_dir="runs/ppo", callbacks=[dash])   # for our PPO
    from_run("runs/ppo")                                 # the same dashboard, redrawn from disk after a restart
    from_run(["runs/ppo", "runs/rloo"])                  # several runs overlaid

Panels follow the stage (PPO / RLOO / GRPO, DPO, reward model, SFT) and read TRL's metric names, the names in
metrics.jsonl: each panel has titled axes, whole-number step ticks and its own legend. Under the plots, a pageable
history of sample tables (step, prompt, response, score). Untrusted text (model samples, run names, labels) is
escaped once for where it goes: `html.escape` in tables, `rlhfkit.figures.plotly_text` in plot titles and legends.

Where it draws. In JupyterLab (an IPython kernel with a comm manager, driven by an interactive front end) it shows
plotly `FigureWidget`s updated in place. Updates are batched and throttled: points are only appended to lists as
they arrive, and the widgets are redrawn at most every `min_interval` seconds and never more often than keeps the
drawing under `budget` (5%) of the elapsed time. The first FigureWidget of a kernel imports plotly's renderers
(seconds): that import runs in a background thread while the status line and samples already show. Headless (a
script, the CLI, a notebook executed by nbclient, which sends its requests with allow_stdin=False) it draws nothing
while training and writes the same figures and sample tables to `run_dir/dashboard.html` at the end
(self-contained, plotly.js inlined once). `live=False` forces headless, `live=True` forces widgets.

"The end" is `on_train_end` for a TRL trainer; our PPO calls plain callables only, so use the dashboard as a
context manager (or call `close()`) to get the file (a `with` block also writes it when PPO is interrupted). A TRL
run interrupted before `on_train_end` writes none, and rows a stage writes after training (SFT's and DPO's "after"
samples, the reward model's held-out rewards behind its histogram) come too late for it: `from_run` redraws
everything from the run directory, which holds every logged step.
"""

from __future__ import annotations

import html
import importlib
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from transformers import TrainerCallback

from rlhfkit.data.errors import _is_missing
from rlhfkit.figures import plotly_text, step_axis, step_dtick
from rlhfkit.runs import CONFIG, SAMPLES, load, record_written

__all__ = ["Dashboard", "from_run", "has_frontend", "Panel", "PANELS", "panels_for", "DASHBOARD_FILE"]

DASHBOARD_FILE = "dashboard.html"


# ================================================================================================================
# Panels per stage, in TRL's metric names
# ================================================================================================================


@dataclass(frozen=True)
class Panel:
    """One subplot: the metric keys it draws (whichever of them a run logs), or a histogram of sample rewards.
    `y` titles its y axis; `scale` is "auto", "fraction" (the axis starts at 0) or "rate" (starts at 0, ticks in
    e-notation: a constant learning rate of 2e-4 shows as a line at 2e-4, not at 0 on a -1..1 axis)."""

    title: str
    keys: tuple[str, ...] = ()
    kind: str = "line"  # "line" (metrics against step) or "histogram" (the `reward` column of samples)
    y: str = ""
    scale: str = "auto"


_Y_SCALES = {
    "auto": {},
    "fraction": {"rangemode": "tozero"},
    "rate": {"rangemode": "tozero", "exponentformat": "e", "showexponent": "all"},
}

_RL = (  # our PPO and TRL's RLOO / GRPO log different names for some of these; a panel draws whichever exist
    Panel("reward", ("objective/scores", "objective/rlhf_reward"), y="reward"),
    Panel("KL to reference (sequence)", ("objective/kl",), y="KL, nats per response"),
    Panel("entropy (per token)", ("policy/entropy_avg", "entropy"), y="nats per token"),
    Panel("policy and value loss", ("loss/policy_avg", "loss/value_avg", "loss"), y="loss"),
    Panel(
        "clip fraction",
        ("policy/clipfrac_avg", "val/clipfrac_avg", "clip_ratio/region_mean"),
        y="fraction clipped",
        scale="fraction",
    ),
    Panel("learning rate", ("lr", "learning_rate"), y="learning rate", scale="rate"),
)
PANELS: dict[str, tuple[Panel, ...]] = {
    "ppo": _RL,
    "rloo": _RL,
    "grpo": _RL,
    "online_dpo": _RL,
    "dpo": (
        Panel("loss", ("loss",), y="loss"),
        Panel("implicit rewards", ("rewards/chosen", "rewards/rejected"), y="implicit reward"),
        Panel("reward margin", ("rewards/margins",), y="chosen - rejected"),
        Panel("preference accuracy", ("rewards/accuracies",), y="fraction of pairs", scale="fraction"),
    ),
    "reward": (
        Panel("loss", ("loss",), y="loss"),
        Panel("accuracy", ("accuracy", "eval_accuracy"), y="fraction of pairs", scale="fraction"),
        Panel("margin", ("margin", "eval_margin"), y="chosen - rejected"),
        Panel("reward (min, mean, max of a batch)", ("mean_reward", "min_reward", "max_reward"), y="reward"),
        Panel("reward histogram (held-out samples)", kind="histogram", y="samples"),
    ),
    "sft": (
        Panel("loss", ("loss",), y="loss"),
        Panel("token accuracy", ("mean_token_accuracy",), y="fraction of tokens", scale="fraction"),
    ),
    "other": (
        Panel("loss", ("loss",), y="loss"),
        Panel("learning rate", ("learning_rate", "lr"), y="learning rate", scale="rate"),
    ),
}
PANELS["kto"] = PANELS["dpo"]

# TRL config classes -> stage, for a TrainerCallback that was not told its stage.
_CONFIG_STAGES = {
    "SFTConfig": "sft",
    "RewardConfig": "reward",
    "DPOConfig": "dpo",
    "KTOConfig": "kto",
    "RLOOConfig": "rloo",
    "GRPOConfig": "grpo",
    "OnlineDPOConfig": "online_dpo",
}
_SCORE_COLUMNS = ("score", "reward", "gold", "gold_score", "proxy")  # first present = the table's score column
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
_DASHES = ("solid", "dash", "dot", "dashdot")


def panels_for(stage: str | None) -> tuple[Panel, ...]:
    """The panels of a stage ("ppo", "rloo", "grpo", "dpo", "reward", "sft", ...); "other" for anything else."""
    return PANELS.get(stage or "other", PANELS["other"])


def _infer_stage(keys: Iterable[str]) -> str | None:
    keys = set(keys)
    if keys & {"objective/scores", "objective/kl", "loss/policy_avg"}:
        return "ppo"
    if "rewards/margins" in keys:
        return "dpo"
    if "mean_token_accuracy" in keys:
        return "sft"
    if {"accuracy", "margin"} <= keys:
        return "reward"
    return None


# ================================================================================================================
# Is anyone looking? An interactive front end, honestly detected
# ================================================================================================================


def has_frontend() -> bool:
    """True inside an IPython kernel that has a comm manager (widgets can reach a front end) and whose current
    request came from an interactive front end. JupyterLab, Notebook and VS Code execute cells with
    allow_stdin=True; nbclient and papermill execute with allow_stdin=False and render no widgets, so they count
    as headless."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is None or getattr(kernel, "comm_manager", None) is None:
        return False
    try:
        parent = kernel.get_parent("shell")
    except TypeError:  # ipykernel < 6.27 takes no channel
        parent = kernel.get_parent()
    return bool(((parent or {}).get("content") or {}).get("allow_stdin", False))


def _in_ipython() -> bool:
    """An IPython shell to display into (live=True outside one updates the widgets but shows nothing)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _widgets_available() -> bool:
    try:
        import anywidget  # noqa: F401  (plotly 7's FigureWidget is an anywidget)
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


# The first FigureWidget of a process imports plotly's renderers (plotly.io -> nbformat -> jsonschema, which
# compiles grammars as it is imported): seconds of pure Python, 1.7 s on a quiet machine and 7 s on a busy one
# here. A live dashboard starts that one import in a background thread as it is created and shows its status line
# and samples meanwhile; the plots join at the first step after the import is done (at the latest at the end).
_FIGURE_WIDGET_MODULE = "plotly.graph_objs._figurewidget"
_plot_import: threading.Thread | None = None
_plot_import_cpu: float | None = None  # CPU seconds the background import took (the bench reports it)


def _start_plot_import() -> None:
    global _plot_import
    if _plot_import is None and _FIGURE_WIDGET_MODULE not in sys.modules:
        _plot_import = threading.Thread(target=_import_plot_widgets, name="rlhfkit-plotly-import", daemon=True)
        _plot_import.start()


def _import_plot_widgets() -> None:
    global _plot_import_cpu
    start = time.thread_time()
    try:
        importlib.import_module(_FIGURE_WIDGET_MODULE)
        # A first figure loads plotly's default template and the classes of what the panels use (lazily imported
        # otherwise, by the first FigureWidget: a further 0.3-0.7 s in the training thread).
        _plotly_figure(
            data=[{"type": "scatter"}, {"type": "histogram"}],
            layout={"xaxis2": {}, "yaxis2": {}, "legend2": {}, "annotations": [{}]},
        )
    except Exception:  # noqa: BLE001  the training thread imports it again when it draws, and gets the real error
        pass
    _plot_import_cpu = time.thread_time() - start


def _plotly_figure(**kwargs):
    import plotly.graph_objects as go

    return go.Figure(**kwargs)


def _plots_ready(wait: bool = False) -> bool:
    """Is plotly's widget stack imported? `wait=True` waits for the background import to finish."""
    if _plot_import is not None and _plot_import.is_alive():
        if not wait:
            return False
        _plot_import.join()
    return True


# ================================================================================================================
# What a dashboard holds: per run, metric series and pages of samples
# ================================================================================================================


@dataclass
class _Run:
    name: str
    stage: str | None = None
    series: dict[str, tuple[list, list]] = field(default_factory=dict)  # key -> (steps, values)
    pages: list[tuple[int, list[dict]]] = field(default_factory=list)  # (step, sample rows), oldest first

    def add_metrics(self, step: int, metrics: dict) -> None:
        for key, value in metrics.items():
            # The same filter as rlhfkit.runs.MetricsCallback, so the series match metrics.jsonl.
            if key != "step" and isinstance(value, (int, float)):
                steps, values = self.series.setdefault(key, ([], []))
                steps.append(step)
                values.append(value)

    def add_samples(self, rows: Sequence[dict], default_step: int | None = None) -> None:
        """Rows join the page of their step (rows of one step arrive together, in step order)."""
        for row in rows:
            step = int(row.get("step", default_step if default_step is not None else -1))
            if not self.pages or self.pages[-1][0] != step:
                self.pages.append((step, []))
            self.pages[-1][1].append(dict(row, step=step))


def _escape(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    return _escape(value)


def _samples_table_html(rows: Sequence[dict]) -> str:
    """An HTML table of sample rows: step, the row's role (before/after, chosen/rejected) when it has one, prompt,
    response, score (the first of score / reward / gold / gold_score / proxy) and gold / KL when present. Every
    cell is escaped."""
    if not rows:
        return "<p><i>no samples yet</i></p>"
    present = set().union(*rows)
    score = next((c for c in _SCORE_COLUMNS if c in present), None)
    columns = ["step", *[c for c in ("model", "when", "label") if c in present], "prompt", "response"]
    columns += [c for c in (score, "gold", "gold_score", "kl") if c and c in present and c not in columns]
    head = "".join(f"<th>{_escape('score' if c == score else c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows)
    return f'<table class="rlhfkit-samples"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_TABLE_STYLE = """<style>
.rlhfkit-samples { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
.rlhfkit-samples th, .rlhfkit-samples td { border: 1px solid #ccc; padding: 3px 6px; vertical-align: top;
  text-align: left; }
.rlhfkit-samples td { white-space: pre-wrap; max-width: 40em; }
.rlhfkit-samples th { background: #f4f4f4; }
</style>"""


# ================================================================================================================
# Figures
# ================================================================================================================

# The grid in pixels. Every panel is a plot with its title above it and, below it, its x-axis title and its own
# legend: one legend per panel (plotly's legend, legend2, ...), never one shared legend matched to panels by colour.
_TITLE_PX, _PLOT_PX, _AXIS_PX, _ENTRY_PX, _GAP_PX = 24, 170, 42, 17, 12
_COLUMN_GAP = 0.09  # paper width between columns: room for the next panel's y-axis title and tick labels


def _grid(panels: Sequence[Panel]) -> tuple[int, int]:
    cols = min(3, max(1, len(panels)))
    return math.ceil(len(panels) / cols), cols


def _suffix(p: int) -> str:
    """Panel p's axes and legend are x{n}, y{n} and legend{n} ("x", "y", "legend" for the first)."""
    return "" if p == 0 else str(p + 1)


def _layout(panels: Sequence[Panel], title: str | None, n_runs: int = 1, last_step: int | None = None) -> dict:
    """The figure's layout as a plain dict: a titled plot per panel (axes titled, whole-number step ticks, the
    learning rate on an axis that shows its value) with a legend below each. `n_runs` sizes the legends."""
    rows, cols = _grid(panels)
    entries = max(len(p.keys) if p.kind == "line" else 2 for p in panels) * max(1, n_runs)
    block = _TITLE_PX + _PLOT_PX + _AXIS_PX + _ENTRY_PX * entries + _GAP_PX
    top, bottom = (60 if title else 20), 10
    area = rows * block
    width = (1 - _COLUMN_GAP * (cols - 1)) / cols

    def paper_y(px: float) -> float:  # pixels from the top of the plotting area -> plotly's paper coordinate
        return 1 - px / area

    layout: dict[str, Any] = {
        "height": top + area + bottom,
        "margin": {"t": top, "b": bottom, "l": 60, "r": 10},
        "barmode": "overlay",
        "showlegend": True,
        "annotations": [],
    }
    if title:
        layout["title"] = {"text": plotly_text(title), "x": 0.01, "xanchor": "left"}
    for p, panel in enumerate(panels):
        row, col = divmod(p, cols)
        n = _suffix(p)
        left = col * (width + _COLUMN_GAP)
        plot_top = row * block + _TITLE_PX
        plot_bottom = plot_top + _PLOT_PX
        x_axis = step_axis(last_step) if panel.kind == "line" else {"title": {"text": "reward"}}
        layout[f"xaxis{n}"] = {"domain": [left, min(1.0, left + width)], "anchor": f"y{n}", **x_axis}
        layout[f"yaxis{n}"] = {
            "domain": [paper_y(plot_bottom), paper_y(plot_top)],
            "anchor": f"x{n}",
            "title": {"text": panel.y, "standoff": 4},
            **_Y_SCALES[panel.scale],
        }
        layout[f"legend{n}"] = {
            "x": left,
            "xanchor": "left",
            "y": paper_y(plot_bottom + _AXIS_PX),
            "yanchor": "top",
            "orientation": "v",
            "font": {"size": 11},
        }
        layout["annotations"].append(
            {
                "text": f"<b>{plotly_text(panel.title)}</b>",
                "x": left + width / 2,
                "y": paper_y(plot_top),
                "xref": "paper",
                "yref": "paper",
                "xanchor": "center",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 13},
            }
        )
    return layout


def _last_step(runs: Sequence[_Run]) -> int | None:
    last = [steps[-1] for run in runs for steps, _ in run.series.values() if steps]
    return max(last) if last else None


def _trace_specs(runs: Sequence[_Run], panels: Sequence[Panel]) -> list[tuple[tuple, dict]]:
    """(identity, plotly trace dict) for every trace the runs' data calls for, in a fixed order, each on its
    panel's axes and in its panel's legend. One run: a color per metric; several runs: a color per run and a dash
    style per metric within a panel. Names are untrusted text (run names, sample labels): `plotly_text`."""
    several = len(runs) > 1
    # One run: a color per metric it logged, the same in every panel.
    logged = [list(dict.fromkeys(k for panel in panels for k in panel.keys if k in run.series)) for run in runs]
    specs = []
    for p, panel in enumerate(panels):
        n = _suffix(p)
        where = {"xaxis": f"x{n}", "yaxis": f"y{n}", "legend": f"legend{n}"}
        for r, run in enumerate(runs):
            if panel.kind == "histogram":
                rewards = [s for _, rows in run.pages for s in rows if isinstance(s.get("reward"), (int, float))]
                groups: dict[str, list] = {}
                for s in rewards:
                    groups.setdefault(str(s.get("label", "reward")), []).append(s["reward"])
                for g, (label, values) in enumerate(sorted(groups.items())):
                    name = f"{run.name}: {label}" if several else label
                    specs.append(
                        (
                            (run.name, p, label),
                            dict(
                                type="histogram",
                                x=values,
                                name=plotly_text(name),
                                opacity=0.6,
                                **where,
                                marker=dict(color=_COLORS[(r if several else g) % len(_COLORS)]),
                            ),
                        )
                    )
                continue
            for k, key in enumerate(panel.keys):
                if key not in run.series:
                    continue
                steps, values = run.series[key]
                name = f"{run.name}: {key}" if several else key
                specs.append(
                    (
                        (run.name, p, key),
                        dict(
                            type="scatter",
                            mode="lines+markers",
                            x=list(steps),
                            y=list(values),
                            name=plotly_text(name),
                            marker=dict(size=3),
                            **where,
                            line=dict(
                                color=_COLORS[(r if several else logged[r].index(key)) % len(_COLORS)],
                                dash=_DASHES[k % len(_DASHES)] if several else "solid",
                            ),
                        ),
                    )
                )
    return specs


# ================================================================================================================
# The dashboard
# ================================================================================================================


class Dashboard(TrainerCallback):
    """Live plots and sample tables for one training run (or several, redrawn from disk with `from_run`).

    Pass it as a callback: to a TRL stage (`train_sft`, `train_reward_model`, `train_dpo`, `train_online`, or any
    transformers Trainer) it is a `TrainerCallback`; to `train_ppo` it is the plain callable
    `dashboard(step, metrics, samples)`.

    - `stage`: which panels ("ppo", "rloo", "grpo", "dpo", "reward", "sft"); None = the run directory's stage, the
      TRL config's class, or the metric names, whichever is known first.
    - `run_dir`: where the headless dashboard.html goes and (for TRL stages) whose samples.jsonl feeds the sample
      table. None = the run directory of an rlhfkit stage (TRL's output_dir is `run_dir/checkpoints`), else TRL's
      output_dir. Our PPO passes no run directory to its callbacks: give `run_dir` to get the file.
    - `live`: None = widgets when `has_frontend()`, False = headless, True = widgets regardless.
    - `min_interval`: seconds between redraws at least; `budget`: the largest share of elapsed time redrawing may
      take (each redraw's cost pushes the next one back by cost / budget).
    - `sample_every`: the sample table moves to the newest samples at most every this many steps (every page
      stays in the history, for the pager).

    `seconds` is the time the calling thread spent inside the dashboard so far (setting up, recording, drawing,
    writing; creating the plots once plotly has loaded, and waiting for that import if a run ends before it).
    """

    def __init__(
        self,
        stage: str | None = None,
        *,
        run_dir: str | os.PathLike | None = None,
        live: bool | None = None,
        min_interval: float = 1.0,
        budget: float = 0.05,
        sample_every: int = 5,
        title: str | None = None,
    ) -> None:
        if min_interval < 0 or not 0 < budget <= 1:
            raise ValueError(f"min_interval must be >= 0 and budget in (0, 1], got {min_interval}, {budget}")
        if sample_every < 1:
            raise ValueError(f"sample_every must be at least 1, got {sample_every}")
        self.stage = stage
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.live = has_frontend() if live is None else bool(live)
        if self.live and not _widgets_available():
            import warnings

            warnings.warn("the live dashboard needs ipywidgets and anywidget; drawing headless instead", stacklevel=2)
            self.live = False
        start = time.perf_counter()
        if self.live:
            import ipywidgets  # noqa: F401  (here, so that the background import finds it done)

            _start_plot_import()
        self.min_interval, self.budget, self.sample_every = float(min_interval), float(budget), int(sample_every)
        self.title = title
        self.seconds = time.perf_counter() - start
        self._runs: list[_Run] = []
        self._samples_offset = 0  # bytes of run_dir/samples.jsonl already read (TRL stages)
        self._tail_samples = False  # True for TRL stages, whose samples reach us only through samples.jsonl
        self._checked_run_dir = False
        self._started = time.perf_counter()
        self._next_draw = 0.0
        self._closed = False
        self._view: _LiveView | None = None

    # --- feeding it -------------------------------------------------------------------------------------------

    def __call__(self, step: int, metrics: dict, samples: Sequence[dict] = ()) -> None:
        """One training step: its metrics (TRL names) and the sample rows logged at it (our PPO's callback)."""
        start = time.perf_counter()
        run = self._run()
        run.add_metrics(int(step), metrics)
        self._settle_stage(run)
        if samples:
            run.add_samples(samples, default_step=int(step))
        self._maybe_draw(start)
        self.seconds += time.perf_counter() - start

    def on_train_begin(self, args, state, control, **kwargs):
        start = time.perf_counter()
        if state.is_world_process_zero:
            self._tail_samples = True
            if self.run_dir is None:
                out = Path(args.output_dir)
                self.run_dir = out.parent if out.name == "checkpoints" and (out.parent / CONFIG).exists() else out
            self.stage = self.stage or self._stage_from_run_dir() or _CONFIG_STAGES.get(type(args).__name__)
            self._settle_stage(self._run())
            self._read_new_samples()
            if self.live:
                self._draw()
        self.seconds += time.perf_counter() - start

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        start = time.perf_counter()
        run = self._run()
        run.add_metrics(int(state.global_step), logs)
        self._settle_stage(run)
        self._maybe_draw(start)
        self.seconds += time.perf_counter() - start

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.close()

    def refresh(self) -> None:
        """Redraw the widgets now, throttle or not (live only; headless there is nothing to draw)."""
        if self.live:
            start = time.perf_counter()
            self._draw()
            self.seconds += time.perf_counter() - start

    # --- the end ----------------------------------------------------------------------------------------------

    def close(self) -> Path | None:
        """The run ended: draw everything still pending (live), or write dashboard.html into the run directory
        (headless; returns its path). Calling it again does nothing."""
        if self._closed:
            return None
        self._closed = True
        start = time.perf_counter()
        try:
            if self.live:
                self._draw()
                return None
            return self.save() if self.run_dir is not None else None
        finally:
            self.seconds += time.perf_counter() - start

    def __enter__(self) -> "Dashboard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- what it shows ----------------------------------------------------------------------------------------

    @property
    def panels(self) -> tuple[Panel, ...]:
        """The panels shown: those of every run's stage, in order, without repeats."""
        out: list[Panel] = []
        for run in self._runs or [_Run("", self.stage)]:
            for panel in panels_for(run.stage or _infer_stage(run.series)):
                if panel not in out:
                    out.append(panel)
        return tuple(out)

    @property
    def pages(self) -> list[tuple[str, int, list[dict]]]:
        """The sample history: (run name, step, rows) per page, oldest first."""
        return [(run.name, step, rows) for run in self._runs for step, rows in run.pages]

    def series(self, key: str, run: str | None = None) -> tuple[list, list]:
        """(steps, values) recorded for a metric (of the first run, or of the run named `run`)."""
        found = next((r for r in self._runs if run is None or r.name == run), None)
        if found is None:
            raise KeyError(f"no run named {run!r}; runs: {[r.name for r in self._runs]}")
        steps, values = found.series.get(key, ([], []))
        return list(steps), list(values)

    def figure(self):
        """The metrics as a plain plotly Figure (what the widgets show, and what dashboard.html holds)."""
        import plotly.graph_objects as go

        panels = self.panels
        layout = _layout(panels, self.title, len(self._runs), _last_step(self._runs))
        return go.Figure(data=[trace for _, trace in _trace_specs(self._runs, panels)], layout=layout)

    def samples_html(self, page: int = -1) -> str:
        """One page of the sample history as an escaped HTML table (default the newest)."""
        pages = self.pages
        if not pages:
            return _samples_table_html([])
        name, step, rows = pages[page]
        label = f"{name}, step {step}" if len(self._runs) > 1 else f"step {step}"
        return (
            f"<div><b>{_escape(label)}</b> (page {page % len(pages) + 1} of {len(pages)})</div>"
            + _samples_table_html(rows)
        )

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the figures and the whole sample history as one self-contained HTML file (plotly.js inlined
        once); default `run_dir/dashboard.html`."""
        if path is None:
            if self.run_dir is None:
                raise ValueError("no run directory known: pass save(path) or Dashboard(run_dir=...)")
            path = self.run_dir / DASHBOARD_FILE
        path = Path(path)
        self._read_new_samples()
        title = self.title or ", ".join(f"{r.name} ({r.stage or _infer_stage(r.series) or '?'})" for r in self._runs)
        figure = self.figure().to_html(full_html=False, include_plotlyjs=True)
        pages = self.pages
        history = "".join(
            f"<details{' open' if i == 0 else ''}><summary>{_escape(name)}, step {step} ({len(rows)} rows)"
            f"</summary>{_samples_table_html(rows)}</details>"
            for i, (name, step, rows) in enumerate(reversed(pages))
        )
        page = (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_escape(title)}</title>'
            f"{_TABLE_STYLE}<style>body {{ font-family: system-ui, sans-serif; margin: 1em 2em; }}</style>"
            f"</head><body><h1>{_escape(title)}</h1>{figure}<h2>Samples, newest first</h2>"
            f"{history or '<p><i>no samples logged</i></p>'}</body></html>\n"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        record_written(path.parent, path.name)  # in a run directory: listed as rlhfkit's in its manifest
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
        return path

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, display

        if self.live:
            display(self._ensure_view().box)
            self._view.displayed = True
            self._draw()
        else:
            display(self.figure())
            display(HTML(_TABLE_STYLE + self.samples_html()))

    # --- internals --------------------------------------------------------------------------------------------

    def _run(self) -> _Run:
        if not self._runs:
            name = self.run_dir.name if self.run_dir is not None else (self.stage or "run")
            self._runs.append(_Run(name, self.stage))
        return self._runs[0]

    def _settle_stage(self, run: _Run) -> None:
        """The stage, once: as given, else the run directory's, else from the metric names seen so far."""
        if run.stage is None:
            if self.stage is None and self.run_dir is not None and not self._checked_run_dir:
                self._checked_run_dir = True  # read config.json once, not on every step
                self.stage = self._stage_from_run_dir()
            run.stage = self.stage = self.stage or _infer_stage(run.series)

    def _stage_from_run_dir(self) -> str | None:
        import json

        try:
            return json.loads((self.run_dir / CONFIG).read_text()).get("stage") or None
        except (OSError, ValueError, TypeError):
            return None

    def _read_new_samples(self) -> None:
        """TRL stages write their samples straight to samples.jsonl: read the lines added since last time."""
        if not self._tail_samples or self.run_dir is None:
            return
        path = self.run_dir / SAMPLES
        try:
            with path.open("rb") as f:
                f.seek(self._samples_offset)
                data = f.read()
        except OSError:
            return
        import json

        end = data.rfind(b"\n") + 1  # only complete lines; a line being written is read next time
        rows = []
        for line in data[:end].splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
        self._samples_offset += end
        if rows:
            self._run().add_samples(rows)

    def _maybe_draw(self, now: float) -> None:
        plots_due = self._view is not None and self._view.figure is None and _plots_ready()
        if self.live and (now >= self._next_draw or plots_due):
            self._draw()

    def _draw(self) -> None:
        """Push everything recorded since the last draw to the widgets, then wait at least min_interval, and long
        enough that redrawing stays within the budget, before drawing again. Creating and showing the widgets
        happens once per dashboard and is not a redraw: counted in `seconds`, it does not push the next one back.
        The plots are created once plotly's widget import is done (waited for only at the end)."""
        view = self._ensure_view()
        if not view.displayed and _in_ipython():
            from IPython.display import display

            display(view.box)
            view.displayed = True
        if view.figure is None and _plots_ready(wait=self._closed):
            view.add_plots()
        start = time.perf_counter()
        self._read_new_samples()
        view.update(self)
        cost = time.perf_counter() - start
        self._next_draw = time.perf_counter() + max(self.min_interval, cost / self.budget)

    def _ensure_view(self) -> "_LiveView":
        if self._view is None:
            self._view = _LiveView(self.panels, self.title)
        elif self._view.panels != self.panels:  # the stage became known: same widgets, new subplots
            self._view.set_panels(self.panels, self.title)
        return self._view


class _LiveView:
    """The widgets: a status line, one FigureWidget with every panel (once `add_plots` made it), a pager and the
    sample table."""

    def __init__(self, panels: tuple[Panel, ...], title: str | None) -> None:
        import ipywidgets as w

        self.displayed = False
        self.figure = None
        self.status = w.HTML()
        self.pager = w.IntSlider(
            min=1,
            max=1,
            value=1,
            description="samples page",
            continuous_update=False,
            layout=w.Layout(width="420px"),
            style={"description_width": "initial"},
        )
        self.table = w.HTML(_TABLE_STYLE + _samples_table_html([]))
        self.pager.observe(self._on_page, names="value")
        self._dashboard = None
        self.table_step = None
        # The page shown follows the newest one unless the user paged back.
        self.following = True
        self.box = w.VBox([self.status, self.pager, self.table])
        self.panels, self.title = panels, title

    def set_panels(self, panels: tuple[Panel, ...], title: str | None) -> None:
        self.panels, self.title = panels, title
        if self.figure is not None:
            self.figure.close()  # a dropped widget would otherwise stay in the notebook's widget state (~5 MB)
            self.add_plots()

    def add_plots(self) -> None:
        """The FigureWidget of the panels, empty; `update` adds the traces."""
        import plotly.graph_objects as go

        layout = _layout(self.panels, self.title)
        # Inside a VBox the plot does not stretch to the cell's width; give each column room explicitly.
        layout["width"] = 300 * _grid(self.panels)[1] + 80
        self.figure = go.FigureWidget(layout=layout)
        self.traces: dict[tuple, int] = {}
        self.drawn_lengths: dict[tuple, int] = {}
        self.dtick = step_dtick(None)
        self.box.children = (self.status, self.figure, self.pager, self.table)

    def update(self, dashboard: Dashboard) -> None:
        self._dashboard = dashboard
        if self.figure is not None:
            self._update_plots(dashboard)
        last = _last_step(dashboard._runs)
        elapsed = time.perf_counter() - dashboard._started
        self.status.value = (
            f"<b>{_escape(', '.join(r.name for r in dashboard._runs) or 'waiting for the first step')}"
            f"</b> &middot; step {last if last is not None else '-'} &middot; {elapsed:.0f} s"
            + (" &middot; <i>plots loading</i>" if self.figure is None else "")
        )
        pages = dashboard.pages
        if pages:
            newest_step = pages[-1][1]
            due = (
                self.table_step is None or newest_step - self.table_step >= dashboard.sample_every or dashboard._closed
            )
            self.pager.max = len(pages)
            if self.following and due and self.pager.value != len(pages):
                self.pager.value = len(pages)  # triggers _on_page
            elif self.following and due:
                self._show(len(pages))

    def _update_plots(self, dashboard: Dashboard) -> None:
        specs = _trace_specs(dashboard._runs, self.panels)
        last = _last_step(dashboard._runs)
        with self.figure.batch_update():
            new = [(ident, trace) for ident, trace in specs if ident not in self.traces]
            if new:  # one message for every new trace, not one each
                self.figure.add_traces([trace for _, trace in new])
                for i, (ident, _) in enumerate(new, start=len(self.figure.data) - len(new)):
                    self.traces[ident] = i
            for ident, trace in specs:
                n = len(trace["x"])
                if self.drawn_lengths.get(ident, n) != n:  # only traces with new points are re-sent
                    target = self.figure.data[self.traces[ident]]
                    target.x = trace["x"]
                    if "y" in trace:
                        target.y = trace["y"]
                self.drawn_lengths[ident] = n
            if step_dtick(last) != self.dtick:  # whole-number step ticks, fewer as the run grows
                self.dtick = step_dtick(last)
                for p, panel in enumerate(self.panels):
                    if panel.kind == "line":
                        self.figure.layout[f"xaxis{_suffix(p)}"].dtick = self.dtick

    def _on_page(self, change) -> None:
        if self._dashboard is None:
            return
        self.following = change["new"] == self.pager.max
        self._show(change["new"])

    def _show(self, page: int) -> None:
        self.table.value = _TABLE_STYLE + self._dashboard.samples_html(page - 1)
        self.table_step = self._dashboard.pages[page - 1][1]


# ================================================================================================================
# Redraw from disk
# ================================================================================================================


def from_run(
    path_or_paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    live: bool | None = None,
    stage: str | None = None,
    title: str | None = None,
) -> Dashboard:
    """The dashboard of finished or interrupted runs, read from their directories (metrics.jsonl, samples.jsonl):
    one run, or several overlaid (a color per run). Shows itself when it is a cell's value; `.figure()`,
    `.samples_html(page)` and `.save(path)` work anywhere. `stage` overrides the panels."""
    import pandas as pd

    paths = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else list(path_or_paths)
    if not paths:
        raise ValueError("from_run needs at least one run directory")
    dash = Dashboard(stage=stage, live=live, run_dir=paths[0] if len(paths) == 1 else None, title=title)
    names = _run_names([Path(p) for p in paths])
    for path, name in zip(paths, names):
        data = load(path)
        run = _Run(name, stage or data.stage or None)
        metrics = data.metrics
        if not metrics.empty and "step" in metrics:
            for key in metrics.columns:
                if key in ("step", "time"):
                    continue
                values = pd.to_numeric(metrics[key], errors="coerce")  # NaN was written as the string "nan"
                keep = metrics[key].notna()
                if keep.any():
                    run.series[key] = (metrics.loc[keep, "step"].astype(int).tolist(), values[keep].tolist())
        if not data.samples.empty:
            rows = data.samples.to_dict("records")
            rows.sort(key=lambda r: int(r.get("step", -1)))  # stable: rows of a step keep their order
            run.add_samples([{k: v for k, v in r.items() if not _is_missing(v)} for r in rows])
        if run.stage is None:
            run.stage = _infer_stage(run.series)
        dash._runs.append(run)
    dash.stage = dash._runs[0].stage
    dash._closed = True
    return dash


def _run_names(paths: list[Path]) -> list[str]:
    """Folder names, with the parent's name added where two runs share one."""
    names = [p.resolve().name for p in paths]
    return [f"{p.resolve().parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(paths, names)]
