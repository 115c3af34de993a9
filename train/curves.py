"""python -m ftcl.train.curves RUN [RUN ...] [--columns loss,avg0.1:0.7,cls_mAP] [--out FILE.png]

Training curves of one or more runs of `python -m ftcl.train` from their metrics.csv: one panel per
column, one line per run, over epochs (a `--seeds` directory counts as its seed-K runs). Epochs that
were not evaluated (--eval-every) leave gaps in the mAP columns; epochs a run sat at chance (the
plateau column) are marked with x. Writes RUN/curves.png for one run;
several runs need --out. A file named with --out is never replaced unless --overwrite.
"""
import sys
from pathlib import Path

import pandas as pd

from ftcl import tool
from ftcl.tool import atomic_write

DEFAULT_COLUMNS = ("loss", "avg0.1:0.7", "cls_mAP")


class CurvesError(ValueError):
    """A run or column that cannot be plotted; the message is one line naming it."""


def run_metrics(paths):
    """{label: metrics DataFrame} of run directories (a --seeds directory gives one entry per seed).
    Labels are the directories as given (seed runs: RUN/seed-K)."""
    runs = {}
    for path in map(Path, paths):
        found = [path] if (path / "metrics.csv").is_file() else sorted(
            p.parent for p in path.glob("seed-*/metrics.csv"))
        if not found:
            raise CurvesError(f"{path}: no metrics.csv (not a run directory of python -m ftcl.train)")
        for run in found:
            try:
                frame = pd.read_csv(run / "metrics.csv")
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
                raise CurvesError(f"{run / 'metrics.csv'}: not a metrics table ({err.__class__.__name__})") from None
            if "epoch" not in frame or frame.empty:
                raise CurvesError(f"{run / 'metrics.csv'}: no epochs recorded yet")
            runs[str(run)] = frame
    return runs


def curves_figure(runs, columns):
    """A matplotlib Figure: one panel per column, one line per run ({label: metrics DataFrame})."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for label, frame in runs.items():
        missing = [c for c in columns if c not in frame]
        if missing:
            raise CurvesError(f"--columns: {missing[0]!r} is not a column of {label}/metrics.csv "
                              f"(it has {', '.join(c for c in frame.columns if c != 'epoch')})")
    fig, axes = plt.subplots(len(columns), 1, figsize=(8, 2.4 * len(columns)), sharex=True, squeeze=False)
    for ax, column in zip(axes[:, 0], columns):
        for label, frame in runs.items():
            values = frame[["epoch", column]].dropna()  # mAP columns are empty on epochs not evaluated
            (line,) = ax.plot(values["epoch"], values[column], marker="." if len(values) < 60 else None, lw=1,
                              label=label)
            if "plateau" in frame:  # epochs the run sat at chance (train.loop's plateau column)
                flat = values[frame.loc[values.index, "plateau"].fillna(0).astype(bool)]
                if len(flat):
                    ax.plot(flat["epoch"], flat[column], "x", color=line.get_color(), ms=5,
                            label=f"{label}: at chance" if column == columns[0] else None)
        ax.set_ylabel(column)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    axes[-1, 0].set_xlabel("epoch")
    fig.tight_layout()
    return fig


def main(argv=None):
    parser = tool.parser("python -m ftcl.train.curves", __doc__)
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories of python -m ftcl.train")
    parser.add_argument("--columns", default=",".join(DEFAULT_COLUMNS),
                        help=f"comma list of metrics.csv columns, one panel each (default {','.join(DEFAULT_COLUMNS)})")
    parser.add_argument("--out", help="PNG to write (default RUN/curves.png for one run)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = parser.parse_args(argv)
    columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    if not columns:
        parser.error("--columns: give at least one column")
    if args.out is None and len(args.runs) > 1:
        parser.error("several runs: name the PNG with --out")
    out = Path(args.out) if args.out else Path(args.runs[0]) / "curves.png"
    try:
        if args.out and out.exists() and not args.overwrite:
            raise CurvesError(f"{out}: exists; --out never replaces a file unless you add --overwrite")
        fig = curves_figure(run_metrics(args.runs), columns)
        try:
            with atomic_write(out, "wb", replace=args.overwrite or not args.out) as f:
                fig.savefig(f, dpi=100, format="png")
        finally:
            fig.clf()
    except (CurvesError, OSError) as err:
        print(tool.error_line(err), file=sys.stderr)
        return 2
    print(f"wrote {out}", file=sys.stderr)
    return 0


run = tool.script(main)  # the console script


if __name__ == "__main__":
    run()
