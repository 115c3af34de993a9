import os
import pathlib

import pytest
import torch  # does not import triton

# Without a GPU the Triton kernels run on CPU tensors through the interpreter, which must be chosen
# before triton is first imported. With a GPU they are compiled and tested for real.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# Training evaluates in-process here (a worker pool forked in one test would keep that test's
# monkeypatches); the tests that check the workers ask for them.
os.environ.setdefault("FTCL_EVAL_WORKERS", "1")

SHARED_THUMOS = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "thumos14"


@pytest.fixture(autouse=True)
def nan_filled_empty(monkeypatch):
    """torch.empty returns NaN-filled floats, so an output the code forgot to write cannot pass."""
    real_empty = torch.empty

    def empty(*args, **kwargs):
        out = real_empty(*args, **kwargs)
        if out.dtype.is_floating_point:
            out.fill_(float("nan"))
        return out

    monkeypatch.setattr(torch, "empty", empty)


@pytest.fixture
def thumos_annotations():
    """The real THUMOS14 annotation directory of ../shared, or skip where it is absent."""
    if not (SHARED_THUMOS / "gt.json").is_file():
        pytest.skip("../shared/data/thumos14 is not here (only development and CI machines have it)")
    return SHARED_THUMOS


@pytest.fixture(params=["rows", "chunks"])
def family(request, monkeypatch):
    """Runs a Triton test on both kernel families (kernels.triton_dp.kernel_family): interpreted here,
    compiled on a GPU."""
    from ftcl.kernels import triton_dp  # after TRITON_INTERPRET is chosen above
    monkeypatch.setattr(triton_dp, "IMPLEMENTATION", request.param)
    return request.param
