"""One PNG chart per scenario from the figures of ``bench/side_by_side.py`` (run under the
benchmark's tools virtualenv, which has matplotlib).

    python charts.py FIGURES.json OUTDIR    -> prints {"scenario": "OUTDIR/scenario.png", ...}
"""

import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

TITLES = {
    "enqueue": "Enqueue rate, one producer",
    "drain": "Drain rate, 2 slots",
    "pickup": "Pickup latency of an idle worker",
    "head_of_line": "Head of line: short tasks beside a long one",
    "idle": "What an idle worker costs Redis",
    "cost": "What one task costs Redis",
    "memory": "Redis memory per pending task",
    "rss": "Idle worker memory",
}


def main(source, outdir):
    figures = json.loads(Path(source).read_text())
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    by_scenario = {}
    for measure in figures["measures"]:
        by_scenario.setdefault(measure["scenario"], []).append(measure)
    written = {}
    for scenario, measures in by_scenario.items():
        names = []
        for m in measures:
            names += [n for n in [*m["values"], *m["notes"]] if n not in names]
        fig, axes = plt.subplots(
            1, len(measures), figsize=(5.2 * len(measures), 0.42 * len(names) + 1.4), squeeze=False, sharey=True
        )
        for ax, m in zip(axes[0], measures, strict=True):
            medians, lows, highs, colors = [], [], [], []
            for name in names:
                values = m["values"].get(name)
                if values:
                    med = statistics.median(values)
                    medians.append(med)
                    lows.append(med - min(values))
                    highs.append(max(values) - med)
                else:
                    medians.append(0.0)
                    lows.append(0.0)
                    highs.append(0.0)
                colors.append("#2b6cb0" if name.startswith("django-blueque") else "#a0aec0")
            y = range(len(names))
            ax.barh(list(y), medians, xerr=[lows, highs], color=colors, capsize=3)
            for i, name in enumerate(names):
                if not m["values"].get(name):
                    ax.text(0, i, " n/a", va="center", fontsize=8, color="#718096")
            better = "lower is better" if m["lower_is_better"] else "higher is better"
            ax.set_title(f"{m['title']}\n({m['unit']}; {better})", fontsize=9)
            ax.set_yticks(list(y))
            ax.set_yticklabels(names, fontsize=8)
            ax.invert_yaxis()
            ax.grid(axis="x", alpha=0.3)
            positive = [v for v in medians if v > 0]
            if positive and max(positive) / max(min(positive), 1e-9) > 200 and not any(v < 0 for v in medians):
                ax.set_xscale("symlog", linthresh=max(min(positive), 1e-3))
        fig.suptitle(
            f"{TITLES.get(scenario, scenario)}: median of {figures['rounds']} rounds, bars min to max", fontsize=10
        )
        fig.tight_layout()
        path = outdir / f"{scenario}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written[scenario] = str(path)
    print(json.dumps(written))


if __name__ == "__main__":
    main(*sys.argv[1:3])
