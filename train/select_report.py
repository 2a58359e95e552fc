"""``train select``'s report: what each filter dropped, the rows written, and per problem the
pass rate and the distinct paths found and kept, as ``report.json``, ``report.md`` and one
figure (``select.png``: distinct correct paths per problem, and pass rates)."""

from __future__ import annotations

import json
from pathlib import Path

from eval.runs import replace_file


def summary_line(report: dict, out: Path) -> str:
    paths = [p["distinct_paths"] for p in report["per_problem"]]
    line = (f"selected {report['problems_selected']} of {report['problems_sampled']} problems; rows: "
            + ", ".join(f"{name} {n}" for name, n in report["rows"].items()))
    if paths:
        line += f"; distinct correct paths per problem: mean {sum(paths) / len(paths):.2f}"
    return line + f"; report: {out / 'report.md'}"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_problem = report["per_problem"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    paths = [p["distinct_paths"] for p in per_problem]
    kept = [p["kept_paths"] for p in per_problem]
    top = max(paths + kept + [1])
    bins = [b - 0.5 for b in range(top + 2)]
    left.hist([paths, kept], bins=bins, label=["distinct", "kept"])
    left.set(xlabel="correct paths per problem", ylabel="problems", title="Distinct solution paths",
             xticks=range(top + 1))
    left.legend()
    right.hist([p["pass_rate"] for p in per_problem if p["samples"]], bins=10, range=(0, 1))
    right.set(xlabel="pass rate over samples", ylabel="problems", title="Difficulty")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(report: dict) -> str:
    paths = [p["distinct_paths"] for p in report["per_problem"]]
    lines = [
        "# train select", "",
        f"Samples: {', '.join(report['samples'])}", "",
        f"- problems sampled: {report['problems_sampled']}; dropped by decontamination: "
        f"{report['problems_decontaminated']}; selected: {report['problems_selected']}",
        f"- candidates: {report['candidates']}; problems with a reference solution: {report['problems_with_reference']}",
    ]
    if paths:
        sampled = [p["distinct_sampled_paths"] for p in report["per_problem"]]
        lines.append(f"- distinct correct paths per problem (kept for RFT): mean {sum(paths) / len(paths):.2f}, "
                     f"min {min(paths)}, max {max(paths)}")
        lines.append(f"- distinct sampled paths per problem, right or wrong: mean {sum(sampled) / len(sampled):.2f}, "
                     f"min {min(sampled)}, max {max(sampled)}")
    lines += ["", "| dropped | count |", "|---|---:|"]
    lines += [f"| {name} | {count} |" for name, count in sorted(report["dropped"].items())]
    lines += ["", "| training set | rows |", "|---|---:|"]
    lines += [f"| {name} | {count} |" for name, count in report["rows"].items()]
    if report["pair_kinds"]:
        lines += ["", "DPO pairs by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(report["pair_kinds"].items()))]
    lines += ["", "![distinct paths and pass rates](select.png)", ""]
    return "\n".join(lines)


def write_report(out: Path, report: dict) -> None:
    replace_file(out / "report.json", [json.dumps(report, indent=2) + "\n"])
    if report["per_problem"]:
        plot(report, out / "select.png")
    replace_file(out / "report.md", [markdown(report)])
