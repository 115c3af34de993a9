"""`python -m ftcl.evaluation` (the console script ftcl-score): see ftcl.evaluation.cli."""
from ftcl.evaluation.cli import run

if __name__ == "__main__":
    run()
