"""`python -m bench` (from the checkout): see bench.cli."""
from bench.cli import main
from ftcl import tool

if __name__ == "__main__":
    tool.run(main)
