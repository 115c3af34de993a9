"""python -m bench [kernels|eval|step|recipe|tune|compile|ops|sdtw|all] | python -m bench report [--targets] [PATH]

Benchmarks (not tests). kernels, eval, step and recipe run as pytest-benchmark cases (bench/bench_*.py):
results are saved as JSON under .benchmarks/ (compare two commits with `pytest bench/bench_eval.py
--benchmark-compare`) and as bench/results/latest-<what>.json, from which the Markdown tables are
printed and CSV rows appended to bench/results/benchmarks.csv. `recipe --scale F` runs the whole
recipe outside pytest (bench/recipe.py); `compile [--json]` compiles every Triton kernel for five GPU
generations (bench/compile.py); `ops` counts the operations of each training step's phases
(bench/ops.py); `sdtw [--threads N]` times soft-DTW on the CPU beside tslearn and pysdtw
(bench/sdtw.py); `report` prints the tables of a saved JSON or of bench/results/cases.jsonl (each
finished case, kept when a run is cut short), `--targets` only the GPU targets.
"""
import contextlib
import io
import re
import sys
from pathlib import Path

from ftcl import tool

# The pytest-benchmark cases of each benchmark; `all` runs the first three.
CASES = {"kernels": "bench_kernels.py", "eval": "bench_eval.py", "step": "bench_step.py",
         "recipe": "bench_recipe.py", "tune": "bench_tune.py"}
IN_ALL = ("kernels", "eval", "step")
HELP = {"kernels": "FSD / LCS / soft-DTW kernels: the release workload, the CPU grid, the GPU grid and A/Bs",
        "eval": "the per-epoch evaluation and its stages", "step": "one training step of each objective",
        "recipe": "the whole recipe (with options: outside pytest, see bench/recipe.py)",
        "tune": "the kernels' launch configurations (GPU; compiles one kernel per configuration)",
        "compile": "compile every Triton kernel for five GPU generations (no GPU needed)",
        "ops": "operations and Triton launches of each training step's phases",
        "sdtw": "soft-DTW on the CPU beside tslearn and pysdtw (options: see bench/sdtw.py)", "all": " ".join(IN_ALL)}


def build_parser():
    parser = tool.parser("python -m bench", __doc__)
    sub = parser.add_subparsers(dest="what", metavar="BENCHMARK")
    for name in (*CASES, "compile", "ops", "sdtw", "all"):
        command = sub.add_parser(name, help=HELP[name], description=HELP[name])
        if name == "recipe":
            from bench import recipe
            recipe.add_arguments(command)
        elif name in CASES:
            command.add_argument("-k", dest="select", metavar="EXPRESSION",
                                 help="only the cases pytest's -k EXPRESSION selects (their JSON: "
                                      "latest-<benchmark>-<expression>.json)")
        elif name == "compile":
            command.add_argument("--json", action="store_true", help="every compiled variant as JSON")
        elif name == "sdtw":
            from bench import sdtw
            sdtw.add_arguments(command)
    report = sub.add_parser("report", help="the tables of a saved JSON (default bench/results/cases.jsonl)")
    report.add_argument("path", nargs="?", help="a pytest-benchmark JSON or a cases.jsonl file")
    report.add_argument("--targets", action="store_true", help="only the GPU targets table")
    return parser


def run_pytest(what, select=None):
    """Run a benchmark's cases (those pytest's -k `select` picks, when given) and print its tables."""
    import pytest

    from bench.common import RESULTS_DIR
    from bench.report import print_report
    here = Path(__file__).resolve().parent
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    suffix = f"-{re.sub(r'[^A-Za-z0-9]+', '-', select).strip('-')}" if select else ""
    json_path = RESULTS_DIR / f"latest-{what}{suffix}.json"
    files = [str(here / CASES[w]) for w in (IN_ALL if what == "all" else [what])]
    if select:  # a selection of no case is the user's mistake, not pytest's exit status 5
        with contextlib.redirect_stdout(io.StringIO()):
            found = pytest.main([*files, "--collect-only", "-q", "-p", "no:cacheprovider", "--rootdir",
                                 str(here.parent), "-k", select])
        if found == pytest.ExitCode.NO_TESTS_COLLECTED:
            print(f"error: -k {select!r} selects none of the cases of python -m bench {what}", file=sys.stderr)
            return 2
    code = pytest.main([*files, "-q", "-p", "no:cacheprovider", "--benchmark-autosave", f"--benchmark-json={json_path}",
                        "--benchmark-columns=median,mean,rounds", "--rootdir", str(here.parent),
                        *(["-k", select] if select else [])])
    if json_path.exists():
        print_report(json_path)
    return int(code)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    what = args.what or "all"
    if what == "report":
        from bench.common import RESULTS_DIR
        from bench.report import ReportError, print_report, print_targets
        path = Path(args.path) if args.path else RESULTS_DIR / "cases.jsonl"
        if not path.is_file():
            print(f"error: {path}: no such benchmark file", file=sys.stderr)
            return 2
        try:
            (print_targets if args.targets else print_report)(path)
        except ReportError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    if what == "compile":
        from bench import compile as compile_bench
        return compile_bench.main(as_json=args.json)
    if what == "ops":
        from bench import ops
        return ops.main()
    if what == "sdtw":
        from bench import sdtw
        return sdtw.run(args, parser)
    if what == "recipe" and any(value not in (None, False) for name, value in vars(args).items() if name != "what"):
        from bench import recipe
        return recipe.run(args, parser)
    return run_pytest(what, getattr(args, "select", None))
