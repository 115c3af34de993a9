import os

# Must precede any import of triton: kernels then run on CPU tensors through the interpreter.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pathlib  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

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
