"""FTCL (CVPR 2022) on an ACM-Net baseline, and everything around it, under one installed name.

ftcl's own modules are the method (config, data, model, losses, checkpoints, synthetic data,
evaluation of a checkpoint). ftcl.kernels (the DP ops), ftcl.evaluation (proposals, NMS, mAP) and
ftcl.train (the training loop) are the checkout's top-level folders kernels/, evaluation/ and train/,
mapped here by pyproject.toml's package-dir so that `pip install` installs one name: Hugging Face's
`kernels`, or PyPI's `train` and `evaluation`, keep theirs. ftcl.tool holds the conventions every command-line tool shares.
"""
