"""``selection.md``, its plots and ``selection.json``, from :func:`eval.selection.lab.analyse`'s dict."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np

from eval.runs import replace_file
from eval.selection import simulate
from eval.selection.competition import score_distribution

matplotlib.use("Agg")  # files only: no display on our machines or Kaggle's
import matplotlib.pyplot as plt  # noqa: E402

PLOTS = ("accuracy.png", "competition.png", "early_stop.png", "simulation.png")


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_accuracy(analysis: dict, path: Path) -> None:
    """Accuracy vs k per method with its 95% interval, and pass@k as the ceiling."""
    ks = analysis["ks"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in analysis["accuracy"].items():
        mean = [curve[k]["accuracy"] for k in ks]
        low, high = [curve[k]["low"] for k in ks], [curve[k]["high"] for k in ks]
        style = dict(color="black", linestyle="--", marker="") if name == "pass@k" else dict(marker="o")
        line, = ax.plot(ks, mean, label=name, **style)
        ax.fill_between(ks, low, high, color=line.get_color(), alpha=0.12)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"selection methods over {analysis['problems']} problems (95% bootstrap intervals)")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_competition(analysis: dict, path: Path) -> None:
    """The exact distribution of the two-run score at k = score_k, per method."""
    k = analysis["score_k"]
    fig, ax = plt.subplots(figsize=(7, 4))
    shown = []
    for name in analysis["methods"]:
        ps = np.array([p["accuracy"][name][k] for p in analysis["per_problem"]])
        distribution = score_distribution(ps)
        points = np.arange(len(distribution)) / 2
        ax.step(points, distribution, where="mid", label=name)
        shown.extend(points[distribution > 1e-4])
    ax.set_xlim(min(shown) - 1, max(shown) + 1)
    ax.set_xlabel(f"two-run score (points of {analysis['problems']})")
    ax.set_ylabel("probability")
    ax.set_title(f"AIMO-3 two-run score at k={k}")
    ax.legend(fontsize=8)
    _save(fig, path)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def row(*cells: object) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def header(*names: str) -> list[str]:
    return [row(*names), row(*["---"] * len(names))]


def sources_section(analysis: dict) -> list[str]:
    lines = ["## Samples", "", *header("source", "kind", "split", "seeds", "problems", "samples")]
    for s in analysis["sources"]:
        seeds = ", ".join(map(str, s["seeds"])) or "-"
        lines.append(row(f"`{s['path']}`", s["kind"], s["split"], seeds, s["problems"], s["samples"]))
    notes = [f"- split {split}: samples of {len(paths)} sources pooled per problem "
             f"({', '.join(f'`{p}`' for p in paths)}); their sampling settings agree."
             for split, paths in analysis["pooled"].items() if len(paths) > 1]
    runs = [s for s in analysis["sources"] if s["kind"] == "run"]
    long_settings = ("prompt_template", "tool_format")
    for s in {s["split"]: s for s in runs}.values():
        settings = ", ".join(f"{k} {v}" for k, v in s["settings"].items() if k not in long_settings)
        notes.append(f"- split {s['split']} sampling settings: {settings}.")
    if any(len(s["seeds"]) > 1 for s in runs):
        notes.append("- Each (seed, problem) of a run is a separate draw of its candidates; the draws are pooled "
                     "per problem.")
    n = analysis["samples_per_problem"]
    splits = ", ".join(f"{k}: {v}" for k, v in analysis["splits"].items())
    count = f"{n['min']}" + (f" to {n['max']}" if n["max"] != n["min"] else "")
    return lines + [""] + (notes + [""] if notes else []) + [
        f"{analysis['problems']} problems ({splits}), {count} samples each.", ""]


def accuracy_section(analysis: dict) -> list[str]:
    ks, options = analysis["ks"], analysis["options"]
    lines = ["## Accuracy vs k", "",
             "Expected accuracy of each method given k samples of a problem: over every subset of k when "
             f"there are at most {options['draws']}, else over that many random subsets (fixed seed); "
             f"95% bootstrap intervals over problems ({options['resamples']} resamples). pass@k is the "
             "ceiling: some sample of the k is right.", "", "![accuracy vs k](accuracy.png)", "",
             *header("method", *(f"k={k}" for k in ks))]
    for name, curve in analysis["accuracy"].items():
        lines.append(row(name, *(f"{_pct(c['accuracy'])} [{100 * c['low']:.1f}, {100 * c['high']:.1f}]"
                                 for c in (curve[k] for k in ks))))
    lines += ["", "Methods:", ""]
    lines += [f"- `{name}`: {description}" for name, description in analysis["methods"].items()]
    lines += [f"- `{name}` not replayed: {reason}" for name, reason in analysis["skipped_methods"].items()]
    return lines + [""]


def competition_section(analysis: dict) -> list[str]:
    k = analysis["score_k"]
    whole_pool = k >= analysis["samples_per_problem"]["min"]
    lines = ["## Competition score (AIMO-3: two runs, 1 if right in both, 0.5 in one)", "",
             "Two independent draws of k candidates per problem. A problem the method gets right with probability p "
             "scores p in expectation (the single run's accuracy) with variance p(1-p)/2; the total's distribution "
             "is exact (a convolution over problems). *run luck*: its 95% range on these problems; *problems*: the "
             "95% bootstrap interval of the expected score over problems (how far another set of problems like "
             "these could move it). p is estimated from the pooled samples: the draws are of k of them, so the "
             "closer k is to their number, the more the two runs share candidates and the less luck shows; more "
             "samples than k give a truer p.", "", "![two-run score distribution](competition.png)", "",
             f"At k={k} (selection.json has every k)"
             + (": every draw is all the samples, so both runs are the same and no run luck shows; choose a "
                "smaller --score-k" if whole_pool else "") + ":", "",
             *header("method", "split", "expected points", "std", "run luck 95%", "problems 95%")]
    for name, by_k in analysis["competition"].items():
        entry = by_k[k]
        rows = [("all", entry["overall"])] + (list(entry["splits"].items()) if len(entry["splits"]) > 1 else [])
        for split, s in rows:
            lines.append(row(name, split, f"{s['expected']:.2f} of {s['problems']}", f"{s['std']:.2f}",
                             f"{s['range_low']:g} to {s['range_high']:g}",
                             f"{s['problems_low']:.1f} to {s['problems_high']:.1f}"))
    return lines + [""]


def early_stop_section(analysis: dict) -> list[str]:
    early = analysis["early_stop"]
    lines = ["## Early-stop rules", ""]
    if "skipped" in early:
        return lines + [f"Not replayed: {early['skipped']}.", ""]
    lines += [f"Each rule set replayed in the recorded finish order of every problem's samples, voting by "
              f"`{analysis['vote']}`: share of problems where it fired, tokens and wall time saved against letting "
              "every sample finish, and how often its answer is the full vote's.", "",
              "![tokens saved vs agreement](early_stop.png)", "",
              *header("rules", "fired", "tokens saved", "time saved", "agreement", "accuracy", "full vote")]
    for r in early["rows"]:
        lines.append(row(f"`{r['rules']}`", *(_pct(r[key]) for key in ("fired", "tokens_saved", "time_saved",
                                                                       "agreement", "accuracy", "full_vote_accuracy"))))
    return lines + [""]


def simulation_section(analysis: dict) -> list[str]:
    sim = analysis["simulation"]
    lines = ["## Run simulation", ""]
    if "skipped" in sim:
        return lines + [f"Not simulated: {sim['skipped']}.", ""]
    lines += [f"{sim['runs']} simulated runs of the {sim['problems']} problems in random order under "
              f"{sim['time_limit_s']:g} s, N={sim['num_samples']}, early stop `{sim['early_stop'] or 'off'}`, vote "
              f"`{sim['vote']}`: each problem's drawn samples run from its start and end at their recorded finish "
              "times; the time policy gives each problem its allowance.", "",
              "![score distribution](simulation.png)", "",
              *header("policy", "score (mean ± std)", "5% to 95%", "two-run score", "unused s", "overrun s",
                      "runs over limit", "out of time", "cut short", "stopped early")]
    for p in sim["policies"]:
        score, two = p["score"], p["two_run_score"]
        lines.append(row(p["policy"], f"{score['mean']:.2f} ± {score['std']:.2f}",
                         f"{score['p5']:g} to {score['p95']:g}", f"{two['mean']:.2f} ± {two['std']:.2f}",
                         f"{p['unused_s']['mean']:.0f}", f"{p['overrun_s']['mean']:.0f}", p["runs_over_limit"],
                         *(f"{p[key]['mean']:.2f}" for key in ("out_of_time", "cut_by_allowance", "early_stopped"))))
    return lines + [""]


def write_selection_report(out: Path, analysis: dict) -> Path:
    """Write selection.json, the plots and selection.md into ``out``; return selection.md's path."""
    out.mkdir(parents=True, exist_ok=True)
    replace_file(out / "selection.json", [json.dumps(analysis, indent=1, default=str) + "\n"])
    plot_accuracy(analysis, out / "accuracy.png")
    plot_competition(analysis, out / "competition.png")
    if "rows" in analysis["early_stop"]:
        simulate.plot_early_stop(analysis["early_stop"]["rows"], out / "early_stop.png")
    if "skipped" not in analysis["simulation"]:
        simulate.plot_simulation(analysis["simulation"], out / "simulation.png")
    lines = ["# Selection report", ""]
    for section in (sources_section, accuracy_section, competition_section, early_stop_section, simulation_section):
        lines += section(analysis)
    path = out / "selection.md"
    replace_file(path, ["\n".join(lines)])
    return path
