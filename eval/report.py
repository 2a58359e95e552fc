"""report.md and its plots for a run directory, from the summary and the problem records."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on our machines or Kaggle's
import matplotlib.pyplot as plt  # noqa: E402

PLOTS = ("curves.png", "cost.png", "code.png", "breakdown.png", "seeds.png")


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(summary: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, marker in (("pass@k", "o"), ("maj@k", "s")):
        curve = summary["curves"][name]
        ks = sorted(curve, key=int)
        ax.plot([int(k) for k in ks], [curve[k] for k in ks], marker=marker, label=name)
    ax.axhline(summary["accuracy"], color="gray", linestyle="--", label="submitted answer (early stop replayed)")
    ax.axhline(summary["accuracy_full_vote"], color="black", linestyle=":", label="vote over all samples")
    ax.set_xscale("log", base=2)
    ks = sorted(int(k) for k in summary["curves"]["pass@k"])
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("pass@k and maj@k")
    ax.legend()
    _save(fig, path)


def plot_cost(problems: list[dict], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.hist([p["elapsed_s"] for p in problems], bins=20, color="tab:blue")
    left.set_xlabel("seconds per problem")
    left.set_ylabel("problems")
    right.hist([p["generated_tokens"] for p in problems], bins=20, color="tab:orange")
    right.set_xlabel("generated tokens per problem")
    _save(fig, path)


def plot_code(summary: dict, path: Path) -> None:
    fig, (cells, rates, status) = plt.subplots(1, 3, figsize=(13, 3.5))
    histogram = summary["code_cells_histogram"]
    cells.bar(list(histogram), list(histogram.values()), color="tab:blue")
    cells.set_xlabel("code cells run")
    cells.set_ylabel("candidates")
    cells.set_title(f"code cells per candidate (mean {summary['code_cells_per_candidate']:.2f})")
    values = {"error": summary["code_error_rate"], "timeout": summary["code_timeout_rate"]}
    rates.bar(list(values), [0 if v != v else v for v in values.values()], color=["tab:red", "tab:purple"])
    rates.set_ylim(0, 1)
    rates.set_title("share of cells")
    status.barh(list(summary["candidate_status"]), list(summary["candidate_status"].values()), color="tab:gray")
    status.set_title("how candidates ended")
    _save(fig, path)


def plot_breakdown(summary: dict, path: Path) -> None:
    groups = [(title, summary[key]) for key, title in (("by_level", "level"), ("by_subject", "subject")) if summary[key]]
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(5 * max(1, len(groups)), 3.8), squeeze=False)
    for ax, (title, data) in zip(axes[0], groups):
        ax.bar(list(data), [d["accuracy"] for d in data.values()], color="tab:green")
        ax.set_title(f"accuracy by {title}")
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", rotation=45)
    if not groups:
        axes[0][0].text(0.5, 0.5, "this split has no levels or subjects", ha="center", va="center")
        axes[0][0].set_axis_off()
    _save(fig, path)


def plot_seeds(summary: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    seeds = summary["accuracy_by_seed"]
    ax.bar([str(s) for s in seeds], list(seeds.values()), color="tab:cyan")
    ax.axhline(summary["accuracy"], color="gray", linestyle="--", label="mean")
    ax.set_xlabel("seed")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"seed-to-seed spread (std {summary['accuracy_seed_std']:.3f})")
    ax.legend()
    _save(fig, path)


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}%"


def write_report(out: Path, summary: dict, problems: list[dict]) -> str:
    """Write the plots into ``out``; return report.md's text (the caller writes it)."""
    plot_curves(summary, out / "curves.png")
    plot_cost(problems, out / "cost.png")
    plot_code(summary, out / "code.png")
    plot_breakdown(summary, out / "breakdown.png")
    plot_seeds(summary, out / "seeds.png")
    cfg = summary["config"]
    curves = summary["curves"]
    lines = [
        f"# Run report: {summary['split']}",
        "",
        f"Model `{summary['model_path']}`; N={cfg['num_samples']}, M={cfg['max_code_rounds']}, "
        f"T={cfg['temperature']}, mode {cfg['mode']}, profile {cfg['profile']}, early stop {cfg['early_stop']}; "
        f"{summary['problems']} problem runs over seeds {summary['seeds']}.",
        "",
        "Every problem ran without early stop, so that pass@k and maj@k are taken over all "
        f"{summary['samples_per_problem']} samples of each problem (over only the samples an early stop lets "
        "finish they would be biased: those are the fast ones, and a rule fires when they agree). "
        "The config's early-stop rules were replayed on those samples in finish order, which gives "
        "the answer the kit would have submitted with them: a run is the same up to the moment a rule fires. "
        "Candidates cancelled at the deadline count as wrong samples.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy of the submitted answer (early stop replayed) | {_pct(summary['accuracy'])} "
        f"(seed std {summary['accuracy_seed_std']:.3f}) |",
        f"| accuracy of the vote over all {summary['samples_per_problem']} samples "
        f"| {_pct(summary['accuracy_full_vote'])} |",
        *(f"| {name} at k={k} | {_pct(v)} |" for name in ("maj@k", "pass@k") for k, v in list(curves[name].items())[-1:]),
        f"| problems answered by the fallback | {_pct(summary['fallback_rate'])} |",
        f"| stopped early (replayed) / at the deadline "
        f"| {_pct(summary['early_stop_rate'])} / {_pct(summary['deadline_rate'])} |",
        f"| time early stop saves (replayed) | {_pct(summary['early_stop_time_saved'])} |",
        f"| candidates cancelled at the deadline | {summary['cancelled_candidates']} "
        f"(in {summary['problems_with_cancelled']} problem runs) |",
        f"| time per problem | {summary['time_per_problem_s']:.1f} s |",
        f"| generated tokens per problem | {summary['tokens_per_problem']:.0f} |",
        f"| code cells per candidate | {summary['code_cells_per_candidate']:.2f} |",
        f"| code error / timeout rate | {_pct(summary['code_error_rate'])} / {_pct(summary['code_timeout_rate'])} |",
        "",
        "![pass@k and maj@k](curves.png)",
        "",
        "![accuracy by level and subject](breakdown.png)",
        "",
        "![time and tokens per problem](cost.png)",
        "",
        "![code cells and candidate outcomes](code.png)",
        "",
        "![seed spread](seeds.png)",
        "",
    ]
    for key, title in (("by_level", "Level"), ("by_subject", "Subject")):
        if summary[key]:
            lines += [f"| {title} | problems | accuracy |", "|---|---|---|"]
            lines += [f"| {g} | {d['problems']} | {_pct(d['accuracy'])} |" for g, d in summary[key].items()]
            lines.append("")
    return "\n".join(lines)
