"""bench.bench_kernels: the benchmarked release workload computes what the release computes."""
import torch

from bench import release_loops
from bench.bench_kernels import release_inputs, release_terms


def test_release_workload_terms_equal_the_release_loops():
    """The benchmark's release workload (FSD on the two halves of 1024-d candidates, LCS on 2048-d)
    gives the release's per-cell loops' terms and gradients."""
    inputs = release_inputs("cpu", batch=2)
    fsd, lcs = release_terms(*inputs)
    assert (lcs > 0).any()  # some LCS cells clear the 0.92 threshold
    ours = [fsd, lcs, *torch.autograd.grad(fsd.sum() + lcs.sum(), inputs)]
    fsd, lcs = release_loops.fsd_release(inputs[0], inputs[1]), release_loops.lcs_release(inputs[2], inputs[3])
    want = [fsd, lcs, *torch.autograd.grad(fsd.sum() + lcs.sum(), inputs, allow_unused=True, materialize_grads=True)]
    for got, expected in zip(ours, want):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
