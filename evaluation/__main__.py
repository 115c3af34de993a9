"""`python -m evaluation` (from the checkout; anywhere: `python -m ftcl.evaluation`): see ftcl.evaluation.cli."""
from ftcl import tool
from ftcl.evaluation.cli import main

if __name__ == "__main__":
    tool.run(main)
