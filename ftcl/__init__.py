"""FTCL (CVPR 2022) on an ACM-Net baseline: config, data, model, losses, synthetic data, evaluation."""
