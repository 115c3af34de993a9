"""python -m bench [kernels|eval|step|recipe|tune|compile|ops|all]: run benchmarks and print tables;
python -m bench report [--targets] [PATH]: the tables (--targets: only the GPU targets) of a saved JSON
or of bench/results/cases.jsonl.

kernels, eval, step and recipe run as pytest-benchmark cases (bench/bench_*.py): results are saved
as JSON under .benchmarks/ (compare two commits with `pytest bench/bench_eval.py
--benchmark-compare`) and as bench/results/latest-<what>.json, from which the Markdown tables are
printed and CSV rows appended to bench/results/benchmarks.csv. `recipe --scale F` runs the whole
recipe outside pytest (see bench/recipe.py, `recipe --help`); `compile [--json]` compiles every
Triton kernel for five GPU generations (see bench/compile.py); `ops` counts the operations of each
training step's phases (see bench/ops.py).
"""
import sys
from pathlib import Path

from ftcl import tool

FILES = {"kernels": "bench_kernels.py", "eval": "bench_eval.py", "step": "bench_step.py", "recipe": "bench_recipe.py",
         "tune": "bench_tune.py"}
# Run only when asked by name: the recipe takes minutes; tune compiles a kernel per configuration.
NOT_IN_ALL = ("recipe", "tune")


def run_pytest(what):
    import pytest

    from bench.common import RESULTS_DIR
    from bench.report import print_report
    here = Path(__file__).resolve().parent
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS_DIR / f"latest-{what}.json"
    files = [str(here / FILES[w]) for w in ([w for w in FILES if w not in NOT_IN_ALL] if what == "all" else [what])]
    code = pytest.main([*files, "-q", "-p", "no:cacheprovider", "--benchmark-autosave", f"--benchmark-json={json_path}",
                        "--benchmark-columns=median,mean,rounds", "--rootdir", str(here.parent)])
    if json_path.exists():
        print_report(json_path)
    return int(code)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    what = argv.pop(0) if argv and not argv[0].startswith("-") else "all"
    if what not in (*FILES, "all", "report", "compile", "ops"):
        return _usage_error(f"unknown benchmark {what!r}; choose kernels, eval, step, recipe, tune, compile, ops, all "
                            f"or report")
    # recipe with arguments parses them itself; the others take only these.
    allowed = {"report": 1, "compile": 0}.get(what, 0)
    flags = {"compile": "--json", "report": "--targets"}.get(what)
    extra = [a for a in argv if a != flags]
    if not (what == "recipe" and argv) and len(extra) > allowed:
        return _usage_error(f"python -m bench {what}: unexpected argument {extra[allowed]!r} (see --help)")
    if what == "report":
        from bench.common import RESULTS_DIR
        from bench.report import print_report, print_targets
        path = Path(extra[0]) if extra else RESULTS_DIR / "cases.jsonl"
        if not path.is_file():
            return _usage_error(f"{path}: no such benchmark file")
        if "--targets" in argv:
            print_targets(path)
        else:
            print_report(path)
        return 0
    if what == "compile":
        from bench import compile as compile_bench
        return compile_bench.main(argv)
    if what == "ops":
        from bench import ops
        return ops.main(argv)
    if what == "recipe" and argv:
        from bench import recipe
        return recipe.main(argv)
    return run_pytest(what)


def _usage_error(message):
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    tool.run(main)
