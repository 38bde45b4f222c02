"""The run report's PNG plots (matplotlib, Agg backend): losses on one step axis, benchmark accuracy per
stage beside its baselines, token shares per data source, and the stage lineage.

Each function takes a `RunRecord` (medjax/train/run_record.py) and a PNG path, and returns False
(writing nothing) when the run holds nothing to draw.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402

from medjax.train.run_record import RunRecord  # noqa: E402

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _boundaries(ax, run: RunRecord) -> None:
    """Dotted lines where a stage begins, its name at the top of the plot."""
    for stage in run.stages:
        ax.axvline(stage.offset, color="0.6", linestyle=":", linewidth=1)
        ax.annotate(stage.name, (stage.offset, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=9, color="0.3")


def plot_losses(run: RunRecord, path: str) -> bool:
    fig, ax = plt.subplots(figsize=(10, 4.5))
    drawn = False
    for i, stage in enumerate(run.stages):
        color = COLORS[i % len(COLORS)]
        train = [(stage.offset + m["step"], m["loss"]) for m in stage.metrics if "loss" in m]
        if train:
            ax.plot(*zip(*train), color=color, linewidth=1.5, label=f"{stage.name} train loss")
            drawn = True
        # eval_loss, and eval_loss/<source> when a stage evaluates several named sources
        keys = sorted({k for m in stage.metrics for k in m if k == "eval_loss" or k.startswith("eval_loss/")})
        for j, key in enumerate(keys):
            points = [(stage.offset + m["step"], m[key]) for m in stage.metrics if key in m]
            ax.plot(*zip(*points), color=color, linestyle="--", marker="os^vD"[j % 5], markersize=4,
                    linewidth=1, label=f"{stage.name} {key.replace('_', ' ')}")
            drawn = True
    if not drawn:
        plt.close(fig)
        return False
    _boundaries(ax, run)
    ax.set_xlabel("step (all stages, in run order)")
    ax.set_ylabel("loss")
    ax.set_title("Training and held-out loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the stage names stay visible
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_accuracy(run: RunRecord, path: str) -> bool:
    """One panel per task: a bar per (stage, method), chance and majority as lines."""
    tasks = sorted({t for s in run.stages for r in s.evals.values() for t, res in r.get("tasks", {}).items()
                    if res.get("accuracy") is not None})
    if not tasks:
        return False
    methods = list(dict.fromkeys(m for s in run.stages for m in s.evals))
    panel_width = max(5.5, 1.4 * len(run.stages) * len(methods))
    fig, axes = plt.subplots(1, len(tasks), figsize=(panel_width * len(tasks), 4.2), squeeze=False)
    width = 0.8 / len(methods)
    for ax, task in zip(axes[0], tasks):
        baselines, labelled, n = {}, set(), None
        for si, stage in enumerate(run.stages):
            for mi, method in enumerate(methods):
                res = stage.evals.get(method, {}).get("tasks", {}).get(task)
                if not res or res.get("accuracy") is None:
                    continue
                x = si + (mi - (len(methods) - 1) / 2) * width
                ax.bar(x, res["accuracy"], width * 0.95, color=COLORS[mi % len(COLORS)],
                       label=None if method in labelled else method)
                labelled.add(method)
                ax.annotate(f"{res['accuracy']:.2f}", (x, res["accuracy"]), ha="center", va="bottom", fontsize=8)
                for key in ("chance", "majority"):
                    if res.get(key) is not None:
                        baselines[key] = res[key]
                n = res.get("n")
        for key, style in (("chance", ":"), ("majority", "--")):
            if key in baselines:
                ax.axhline(baselines[key], color="0.3", linestyle=style, linewidth=1.2,
                           label=f"{key} {baselines[key]:.2f}")
        ax.set_xticks(range(len(run.stages)), [s.name for s in run.stages])
        ax.set_ylim(0, 1)
        ax.set_xlabel("after stage")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{task} (n={n})")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("Benchmark accuracy after each stage")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def token_shares(run: RunRecord) -> tuple[list[str], list[float], list[list[float]]]:
    """(sources, global steps, shares[source][i]): each source's share of the tokens drawn between one
    logged step and the previous one (metrics.jsonl holds cumulative tokens/<source> counts per stage);
    sources ordered by the mean step of their tokens."""
    sources = list(dict.fromkeys(k[len("tokens/"):] for s in run.stages for m in s.metrics
                                 for k in m if k.startswith("tokens/")))
    steps, shares = [], [[] for _ in sources]
    for stage in run.stages:
        previous = dict.fromkeys(sources, 0)
        for m in stage.metrics:
            counts = {s: m.get(f"tokens/{s}") for s in sources}
            if all(v is None for v in counts.values()):
                continue
            delta = {s: max(0, (counts[s] or 0) - previous[s]) if counts[s] is not None else 0 for s in sources}
            previous.update({s: v for s, v in counts.items() if v is not None})
            total = sum(delta.values())
            if total <= 0:
                continue
            steps.append(stage.offset + m["step"])
            for i, s in enumerate(sources):
                shares[i].append(delta[s] / total)
    # earliest-drawn source first (at the bottom of the stack): priority order reads bottom-up
    weight = [sum(shares[i]) or 1e-12 for i in range(len(sources))]
    order = sorted(range(len(sources)), key=lambda i: sum(x * st for x, st in zip(shares[i], steps)) / weight[i])
    return [sources[i] for i in order], steps, [shares[i] for i in order]


def plot_token_shares(run: RunRecord, path: str) -> bool:
    sources, steps, shares = token_shares(run)
    if not steps:
        return False
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.stackplot(steps, shares, labels=sources, colors=[COLORS[i % len(COLORS)] for i in range(len(sources))],
                 step="pre", alpha=0.85)
    _boundaries(ax, run)
    ax.set_ylim(0, 1)
    ax.set_xlim(0, max(steps))
    ax.set_xlabel("step (all stages, in run order)")
    ax.set_ylabel("share of the tokens drawn")
    ax.set_title("Token share per data source (since the previous logged step)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_lineage(run: RunRecord, path: str) -> bool:
    """A chain of boxes: where the first stage started, then each stage, an arrow from what it started from."""
    fig, ax = plt.subplots(figsize=(max(5, 1.8 * (len(run.stages) + 1)), 2.2))
    ax.set_axis_off()
    ax.set_xlim(-0.5, len(run.stages) + 0.5)
    ax.set_ylim(0, 1)
    positions = {}
    box = dict(boxstyle="round,pad=0.4", facecolor="#eef3fb", edgecolor="#4a6fa5")
    origins = [s.parent for s in run.stages if s.parent and not _stage_of(s.parent, run)]
    if origins:
        ax.text(0, 0.5, _short(origins[0]), ha="center", va="center", fontsize=9,
                bbox=dict(box, facecolor="#f4f4f4", edgecolor="0.5"))
    for i, stage in enumerate(run.stages, 1):
        positions[stage.name] = i
        ax.text(i, 0.5, f"{stage.name}\n{stage.steps} steps", ha="center", va="center", fontsize=10, bbox=box)
        parent = _stage_of(stage.parent, run) if stage.parent else None
        start = positions.get(parent) if parent else (0 if origins else None)
        if start is not None:
            ax.annotate("", xy=(i - 0.32, 0.5), xytext=(start + 0.32, 0.5),
                        arrowprops=dict(arrowstyle="->", color="0.3",
                                        connectionstyle="arc3,rad=0" if start == i - 1 else "arc3,rad=-0.4"))
    ax.set_title("Stage lineage: each stage starts from the weights the arrow comes from", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _stage_of(spec: str | None, run: RunRecord) -> str | None:
    """The stage of this run whose directory a ckpt: spec names, if any."""
    if not spec:
        return None
    target = spec.removeprefix("ckpt:").rstrip("/")
    for stage in run.stages:
        if target == stage.directory or target.startswith(stage.directory + "/"):
            return stage.name
    return None


def _short(spec: str) -> str:
    """A spec readable in a box: scratch, or its last two path parts."""
    kind, _, path = spec.partition(":")
    if not path:
        return spec
    return f"{kind}:\n…/{'/'.join(path.rstrip('/').split('/')[-2:])}"
