"""Training: `python -m ftcl.train baseline|ftcl --data-dir DIR --run-dir RUN ...`."""
