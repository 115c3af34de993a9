"""Benchmarks (not tests): `python -m bench [kernels|eval|step]`. Tables print as Markdown, rows go to CSV."""
