"""Row bands (Settings.row_bands): the rows kernels split each pair's table into bands of rows, one
program each, handing each band's edge to the next through global memory. Checked against the naive
specification and bit for bit against one program per pair, on every band count up to one row per
band, with lengths that end pairs inside, at and above band boundaries."""
import pytest
import torch

from ftcl import kernels
from ftcl.kernels.shared import launch
from tests.kernels.test_api import (
    TRITON_DEVICE,
    _fsd_case,
    _fsd_check,
    _lcs_case,
    _lcs_check,
)

SHAPES = [(3, 7, 5), (2, 9, 1), (2, 1, 6), (2, 11, 10)]


def _lengths(gen, batch, n_rows, n_cols):
    # The first pair full; the others end at random rows, often in a band above the last.
    n = torch.randint(1, n_rows + 1, (batch,), generator=gen)
    m = torch.randint(1, n_cols + 1, (batch,), generator=gen)
    n[0], m[0] = n_rows, n_cols
    return torch.stack([n, m], dim=1)


# Interpreted, one row per band (13 programs a pair) takes half a minute a case: the soft one is slow.
@pytest.mark.parametrize("bands,publish,gamma", [
    pytest.param(2, 1, 0.0, id="bands2-publish1-hard"), pytest.param(2, 1, 0.1, id="bands2-publish1-g0.1"),
    pytest.param(3, 3, 0.0, id="bands3-publish3-hard"), pytest.param(3, 3, 0.1, id="bands3-publish3-g0.1"),
    pytest.param("rows", 2, 0.0, id="row-per-band-publish2-hard"),
    pytest.param("rows", 2, 0.1, id="row-per-band-publish2-g0.1", marks=pytest.mark.slow)])
def test_banded_rows_kernels_match_naive(bands, gamma, publish):
    """Lengths with the first pair whole (and the launch without lengths in the bit-for-bit test)."""
    for seed, (batch, n_rows, n_cols) in enumerate(SHAPES):
        count = n_rows if bands == "rows" else bands
        with kernels.configure(family="rows", row_bands=count, band_publish=publish):
            match, gap, upstream, gen = _fsd_case(60 + seed, batch, n_rows, n_cols)
            lengths = _lengths(gen, batch, n_rows, n_cols)
            _fsd_check(match, gap, upstream, gamma, lengths, "triton", torch.float32, 1e-5, 1e-5)
            sim, upstream, gen = _lcs_case(70 + seed, batch, n_rows, n_cols)
            _lcs_check(sim, upstream, 0.6, gamma, _lengths(gen, batch, n_rows, n_cols), "triton", torch.float32,
                       1e-5, 1e-5)


def _fsd_run(match, gap, upstream, gamma, lengths):
    inputs = [x.to(TRITON_DEVICE, torch.float32).requires_grad_() for x in (match, gap)]
    value = kernels.fsd_score(*inputs, gamma=gamma, lengths=lengths, backend="triton")
    return [value, *torch.autograd.grad((value * upstream.to(value)).sum(), inputs)]


def _lcs_run(sim, upstream, gamma, lengths):
    inputs = sim.to(TRITON_DEVICE, torch.float32).requires_grad_()
    value = kernels.lcs_score(inputs, threshold=0.6, gamma=gamma, lengths=lengths, backend="triton")
    return [value, *torch.autograd.grad((value * upstream.to(value)).sum(), [inputs])]


# Interpreted, each case takes half a minute: one in the fast tier, the others slow.
@pytest.mark.parametrize("depth,skew", [
    pytest.param(4, True, id="prefetch4-diagonal-major"),
    pytest.param(1, True, id="prefetch1-diagonal-major", marks=pytest.mark.slow),
    pytest.param(4, False, id="prefetch4-row-major", marks=pytest.mark.slow),
    pytest.param(1, False, id="prefetch1-row-major", marks=pytest.mark.slow)])
def test_bands_compute_exactly_what_one_program_per_pair_does(depth, skew):
    """Every cell is computed from the same operands in the same order, so values and gradients are
    equal bit for bit, whatever the band count, prefetch depth and input layout."""
    batch, n_rows, n_cols = 3, 9, 7
    match, gap, upstream, gen = _fsd_case(80, batch, n_rows, n_cols)
    sim, _, _ = _lcs_case(81, batch, n_rows, n_cols)
    lengths = _lengths(gen, batch, n_rows, n_cols).to(TRITON_DEVICE)
    layout = {"skew_min_cells": 1, "skew_min_diagonals": 0} if skew else {"skew_min_cells": None}
    results = {}
    for bands in (1, 4, n_rows):
        with kernels.configure(family="rows", row_bands=bands, fsd_prefetch=depth, lcs_prefetch=depth, **layout):
            results[bands] = (_fsd_run(match, gap, upstream, 0.1, lengths) + _fsd_run(match, gap, upstream, 0.0, None)
                              + _lcs_run(sim, upstream, 0.1, lengths))
    for bands in (4, n_rows):
        for got, want in zip(results[bands], results[1]):
            assert torch.equal(got, want), bands


def test_band_counts_follow_the_setting_and_the_auto_rule():
    cpu = torch.device("cpu")
    for n_rows, bands, want in [(7, 2, (2, 4)), (7, 4, (4, 2)), (5, 4, (3, 2)), (3, 8, (3, 1)), (2048, 8, (8, 256)),
                                (1, 3, (1, 1))]:
        assert launch.row_bands((4, n_rows, 9), cpu, kernels.Settings(row_bands=bands)) == want
    assert launch.row_bands((4, 2048, 9), cpu, kernels.Settings()) == (1, 2048)  # the default: one program
    # "auto": bands of at least AUTO_BAND_MIN_ROWS rows, B x bands within AUTO_BAND_PROGRAMS_PER_SM
    # programs per SM (a CPU counts as one SM).
    auto = kernels.Settings(row_bands="auto")
    per_sm, min_rows = launch.AUTO_BAND_PROGRAMS_PER_SM, launch.AUTO_BAND_MIN_ROWS
    assert launch.row_bands((1, 8 * min_rows, 9), cpu, auto) == (per_sm, 8 * min_rows // per_sm)
    assert launch.row_bands((per_sm, 8 * min_rows, 9), cpu, auto) == (1, 8 * min_rows)
    assert launch.row_bands((1, 2 * min_rows - 1, 9), cpu, auto) == (1, 2 * min_rows - 1)
    if torch.cuda.is_available():
        device = torch.device("cuda")
        sms = torch.cuda.get_device_properties(device).multi_processor_count
        bands, band_rows = launch.row_bands((64, 2048, 2048), device, auto)
        assert band_rows >= min_rows and 64 * bands <= per_sm * sms and (bands == 8 or 128 * bands > per_sm * sms)


@pytest.mark.parametrize("bad", [{"row_bands": 0}, {"row_bands": "many"}, {"row_bands": 2.0}, {"band_publish": 0}])
def test_bad_band_settings_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))), kernels.configure(**bad):
        pass
