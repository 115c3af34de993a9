"""`python -m ftcl.train` (the console script ftcl-train): see ftcl.train.cli."""
from ftcl.train.cli import run

if __name__ == "__main__":
    run()
