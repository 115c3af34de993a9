"""`python -m train` (from the checkout; anywhere: `python -m ftcl.train`): see ftcl.train.cli."""
from ftcl import tool
from ftcl.train.cli import main

if __name__ == "__main__":
    tool.run(main)
