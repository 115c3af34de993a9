"""kernels.pairwise_cosine against a float64 autograd reference, values and gradients."""
import pytest
import torch

from ftcl import kernels


def _reference(a, b, parts, eps):
    """Plain autograd in float64: dot / max(|a_i| |b_j|, eps) on each column part. -> [B, P, N, M]."""
    sims = []
    for a_p, b_p in zip(a.chunk(parts, dim=2), b.chunk(parts, dim=2)):
        norms = a_p.norm(dim=2)[:, :, None] * b_p.norm(dim=2)[:, None, :]
        sims.append(a_p @ b_p.transpose(1, 2) / norms.clamp_min(eps))
    return torch.stack(sims, 1)


def _case(seed, batch, n_rows, n_cols, dim, layout):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, n_rows, dim, generator=gen, dtype=torch.float64)
    b = torch.randn(batch, n_cols, dim, generator=gen, dtype=torch.float64)
    a[0, 0] = 0.0  # a zero row: its similarities are 0 and its gradient finite (the eps clamp)
    if layout == "strided":  # every second column of wider tensors, rows transposed in memory
        a = torch.stack([a, a], 3).reshape(batch, n_rows, 2 * dim)[..., ::2]
        b = b.transpose(1, 2).contiguous().transpose(1, 2)
    upstream = torch.randn(batch, 1, n_rows, n_cols, generator=gen, dtype=torch.float64)
    return a, b, upstream


SHAPES = [(3, 5, 5, 64, 2), (2, 30, 30, 200, 1), (4, 1, 7, 33, 1), (2, 17, 3, 96, 3), (1, 32, 31, 50, 2),
          (2, 9, 32, 40, 1)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-N{}-M{}-D{}-P{}".format(*s))
def test_pairwise_cosine_matches_float64_autograd(shape, layout, dtype):
    batch, n_rows, n_cols, dim, parts = shape
    a64, b64, upstream = _case(sum(shape), batch, n_rows, n_cols, dim, layout)
    upstream = upstream.expand(-1, parts, -1, -1) * torch.arange(1, parts + 1, dtype=torch.float64)[:, None, None]
    a64.requires_grad_(), b64.requires_grad_()
    want = _reference(a64, b64, parts, 1e-8)
    want_grads = torch.autograd.grad((want * upstream).sum(), (a64, b64))
    a = a64.detach().to(dtype).requires_grad_()
    b = b64.detach().to(dtype).requires_grad_()
    got = kernels.pairwise_cosine(a, b, parts=parts)
    assert got.shape == (batch, parts, n_rows, n_cols) and got.dtype == dtype
    grads = torch.autograd.grad((got * upstream.to(got.dtype)).sum(), (a, b))
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.double().cpu(), want.detach(), **tol)
    for g, w in zip(grads, want_grads):
        torch.testing.assert_close(g.double().cpu(), w, **tol)


@pytest.mark.parametrize("call,message", [
    (lambda: kernels.pairwise_cosine(torch.zeros(2, 3, 8), torch.zeros(2, 4, 6)), "agree in B and D"),
    (lambda: kernels.pairwise_cosine(torch.zeros(2, 3, 8), torch.zeros(2, 4, 8), parts=3), "parts"),
    (lambda: kernels.pairwise_cosine(torch.zeros(3, 8), torch.zeros(4, 8)), "shape"),
    (lambda: kernels.pairwise_cosine(torch.zeros(1, 3, 8), torch.zeros(1, 4, 8), eps=0), "eps"),
    (lambda: kernels.pairwise_cosine(torch.zeros(1, 3, 8, dtype=torch.float64), torch.zeros(1, 4, 8)), "one dtype"),
    (lambda: kernels.pairwise_cosine(torch.zeros(1, 3, 8), torch.zeros(1, 4, 8), eps=True), "eps must be a number"),
])
def test_pairwise_cosine_rejects_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_parts_take_any_integer_type_and_refuse_the_rest():
    """numpy's integers are whole numbers too (a count from np.unique, say); bools, floats and
    counts that do not divide D are refused, naming what was given."""
    import re

    import numpy as np
    a, b = torch.rand(2, 3, 8), torch.rand(2, 4, 8)
    want = kernels.pairwise_cosine(a, b, parts=2)
    for parts in (np.int64(2), np.int32(2), torch.tensor(2)):
        torch.testing.assert_close(kernels.pairwise_cosine(a, b, parts=parts), want)
    for parts in (True, 2.0, np.int64(3), 0, "2"):
        with pytest.raises(ValueError, match=rf"dividing D = 8, got {re.escape(repr(parts))}$"):
            kernels.pairwise_cosine(a, b, parts=parts)
