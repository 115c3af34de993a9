"""bench.bench_kernels: the benchmarked release workload computes what the method computes."""
import torch

from bench.bench_kernels import release_inputs, release_terms

# The Triton producer runs compiled on a GPU, through the interpreter on the CPU.
TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def test_release_workload_terms_agree_with_either_producer():
    """The benchmark's release workload (FSD on the two halves of 1024-d candidates, LCS on 2048-d)
    gives the same terms and gradients with the Triton producer as with the torch one."""
    inputs = release_inputs(TRITON_DEVICE, batch=3)
    results = {}
    for producer in ("torch", "triton"):
        fsd, lcs = release_terms(*inputs, cosine_backend=producer)
        results[producer] = [fsd, lcs, *torch.autograd.grad(fsd.sum() + lcs.sum(), inputs)]
    assert (results["torch"][1] > 0).any()  # some LCS cells clear the 0.92 threshold
    for got, want in zip(results["triton"], results["torch"]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
