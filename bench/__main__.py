"""python -m bench [kernels|eval|step|all]: print benchmark tables (default: all that apply here)."""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("what", nargs="?", default="all", choices=["kernels", "eval", "step", "all"],
                        help="which benchmark to run (default: all)")
    args = parser.parse_args(argv)
    if args.what in ("kernels", "all"):
        from bench import kernels
        kernels.main()
    if args.what in ("eval", "all"):
        from bench import eval as eval_bench
        eval_bench.main()
    if args.what in ("step", "all"):
        from bench import step
        step.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
