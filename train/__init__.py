"""Training: `python -m train baseline|ftcl --data-dir DIR --run-dir RUN ...`."""
