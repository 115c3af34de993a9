"""evaluation.proposals: the release's test-time procedure, against literal transcriptions and brute force."""
import numpy as np
import pytest

from ftcl.evaluation import proposals as prop
from tests.evaluation import anet_reference as ref


def _scanned_runs(mask):
    """(row, start, end) of the runs of True in each row of mask [R, L], one cell at a time."""
    want = []
    for r in range(mask.shape[0]):
        c = 0
        while c < mask.shape[1]:
            if mask[r, c]:
                first = c
                while c + 1 < mask.shape[1] and mask[r, c + 1]:
                    c += 1
                want.append((r, first, c))
            c += 1
    return want


def test_upsample_matches_linear_interpolation_with_extrapolation():
    rng = np.random.default_rng(1)
    values = rng.random((7, 3))
    np.testing.assert_allclose(prop.upsample(values, 20), ref.upsample(values, 20), rtol=0, atol=0)
    interpolate = pytest.importorskip("scipy.interpolate")
    f = interpolate.interp1d(np.arange(7), values, kind="linear", axis=0, fill_value="extrapolate")
    np.testing.assert_allclose(prop.upsample(values, 20), f(np.arange(0, 7, 1 / 20)), rtol=0, atol=1e-15)


def test_runs_and_oic_scores_on_a_hand_made_sequence():
    seq = np.array([0.0, 0.5, 0.6, 0.0, 0.0, 0.9, 0.8, 0.7, 0.6, 0.1])
    row, start, end = prop.maximal_runs((seq >= 0.5)[None])
    np.testing.assert_array_equal(start, [1, 5])
    np.testing.assert_array_equal(end, [2, 8])
    cumsum = np.r_[0.0, np.cumsum(seq)][None]
    scores = prop.oic_scores(cumsum, row, start, end, 0.2)
    # Run [1, 2]: inner 0.55; flanks int(1 - 0.4) = 0 .. 0 and 3 .. int(2.4) = 2 (empty) -> outer 0.0.
    # Run [5, 8]: inner 0.75; flanks int(5 - 0.8) = 4 .. 4 and 9 .. int(8.8) = 8 (empty) -> outer 0.0.
    np.testing.assert_allclose(scores, [0.55 - 0.0, 0.75 - 0.0])
    long_seq = np.r_[np.full(5, 0.2), np.full(10, 0.8), np.full(5, 0.4)]
    row, start, end = prop.maximal_runs((long_seq >= 0.5)[None])
    scores = prop.oic_scores(np.r_[0.0, np.cumsum(long_seq)][None], row, start, end, 0.2)
    # Flanks of 2 on each side: [3, 4] at 0.2 and [15, 16] at 0.4 -> outer 0.3.
    np.testing.assert_allclose(scores, [0.8 - 0.3])
    for s, e, score in ref.oic_proposals(np.flatnonzero(long_seq >= 0.5), long_seq, 0.2):
        assert (s, e) == (start[0], end[0]) and score == pytest.approx(scores[0])


def test_maximal_runs_match_a_row_by_row_scan():
    rng = np.random.default_rng(9)
    for rows, length in ((7, 40), (1, 1), (3, 1), (0, 5), (12, 3)):
        mask = rng.random((rows, length)) < rng.random((rows, 1))
        got = list(zip(*(x.tolist() for x in prop.maximal_runs(mask))))
        assert got == _scanned_runs(mask)


@pytest.mark.parametrize("thresholds", [np.arange(0.15, 1.0, 0.05), np.array([0.5, 0.2, 0.5, 0.9, 0.05]),
                                        np.array([0.3]), np.array([])], ids=["release", "unsorted-repeated", "one", "none"])
def test_threshold_runs_match_a_scan_of_each_threshold(thresholds):
    """Values on a coarse grid hit thresholds exactly (>= keeps them); NaN reaches none; odd lengths."""
    rng = np.random.default_rng(11)
    for length in (1, 2, 7, 333):
        for values in (rng.random(length), np.round(rng.random(length) * 20) / 20,
                       np.where(rng.random(length) < 0.2, np.nan, rng.random(length))):
            got = list(zip(*(x.tolist() for x in prop.threshold_runs(values, thresholds))))
            assert got == _scanned_runs(values[None] >= thresholds[:, None]), (length, values)


@pytest.mark.parametrize("fixed", [False, True])
def test_nms_matches_brute_force(fixed):
    rng = np.random.default_rng(2)
    start = rng.uniform(0, 50, 80)
    end = start + rng.exponential(4, 80)
    score = np.round(rng.random(80), 1)
    kept = prop.nms(start, end, score, 0.55, fixed=fixed)
    want = ref.nms(list(zip(score, start, end)), 0.55, plus=0.0 if fixed else 1.0)
    np.testing.assert_array_equal(kept, want)


@pytest.mark.parametrize("threshold", [0.55, 0.9, 0.05, 0.0])
@pytest.mark.parametrize("fixed", [False, True])
def test_nms_groups_match_brute_force_per_group(fixed, threshold):
    """Many groups of clustered, nested and touching intervals with tied scores, shuffled: every
    group's kept list (and order) is the release loop's on that group alone. Threshold 0 (everything
    suppresses everything) takes the path without overlap clusters."""
    rng = np.random.default_rng(5)
    n = 600
    group = rng.integers(0, 4, n)
    centre = rng.choice(rng.uniform(0, 300, 12), n) + rng.normal(0, 1.5, n)
    start = np.round(centre - rng.exponential(2, n), 1)
    end = start + np.round(rng.exponential(np.where(rng.random(n) < 0.5, 0.5, 6), n), 1) + 0.1
    start[:40], end[:40] = end[40:80] + (0.0 if fixed else 1.0), end[40:80] + 5  # touching: no overlap
    score = np.round(rng.random(n), 1)
    kept = prop.nms_groups(group, start, end, score, threshold, fixed=fixed)
    assert np.all(np.diff(group[kept]) >= 0)
    for g in range(4):
        members = np.flatnonzero(group == g)
        want = ref.nms(list(zip(score[members], start[members], end[members])), threshold,
                       plus=0.0 if fixed else 1.0)
        np.testing.assert_array_equal(kept[group[kept] == g], members[want])


def test_t_factor_converts_upsampled_indices_to_seconds():
    # 100 original snippets of 16 frames at 25 fps = 64 s; sampled to 50 and upsampled x20 = 1000 indices.
    factor = prop.t_factor(100, 50, upscale=20)
    assert factor * 1000 == pytest.approx(64.0)


@pytest.mark.parametrize("seed", range(4))
def test_video_proposals_match_the_literal_release_procedure(seed):
    rng = np.random.default_rng(seed)
    length, n_cls = 23, 5
    cas = rng.dirichlet(np.ones(n_cls + 1) * 0.3, size=length)[:, :n_cls]
    att = np.clip(np.convolve(rng.random(length), np.ones(3) / 3, mode="same"), 0, 1)
    video_scores = rng.dirichlet(np.ones(n_cls) * 0.5)
    factor = prop.t_factor(57, length)
    label, score, start, end = prop.video_proposals(cas, att, video_scores, factor)
    want = ref.video_proposals(cas, att, video_scores, factor)
    assert sorted(set(label.tolist())) == sorted(want)
    for c, props in want.items():
        got = np.flatnonzero(label == c)
        np.testing.assert_allclose(np.c_[score[got], start[got], end[got]], np.array(props), atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_activitynet_proposals_match_acm_nets_literal_procedure(seed):
    """The activitynet13 preset's test procedure against a transcription of ACM-Net's main_act.py,
    on a hand-made video with low attention and CAS values around its 0.005 ... 0.02 thresholds."""
    from ftcl.config import preset
    from ftcl.inference import proposal_config
    rng = np.random.default_rng(seed)
    length, n_cls = 31, 6
    cas = rng.dirichlet(np.ones(n_cls + 1) * 0.2, size=length)[:, :n_cls] * 0.05
    att = np.clip(np.convolve(rng.random(length) * 0.04, np.ones(3) / 3, mode="same"), 0, 1)
    video_scores = rng.dirichlet(np.ones(n_cls) * 0.4)
    factor = prop.t_factor(140, length)
    config = proposal_config(preset("activitynet13"))
    label, score, start, end = prop.video_proposals(cas, att, video_scores, factor, config)
    want = ref.activitynet_video_proposals(cas, att, video_scores, factor)
    assert len(label) > 3 and sorted(set(label.tolist())) == sorted(want)
    for c, props in want.items():
        got = np.flatnonzero(label == c)
        np.testing.assert_allclose(np.c_[score[got], start[got], end[got]], np.array(props), atol=1e-9)
    thumos = prop.video_proposals(cas, att, video_scores, factor)
    assert len(thumos[0]) != len(label) or not np.allclose(thumos[1], score)


def test_video_proposals_predict_the_arg_max_class_when_none_passes():
    cas = np.tile(np.array([0.05, 0.9, 0.05]), (10, 1))
    label, *_ = prop.video_proposals(cas, np.full(10, 0.9), np.array([0.2, 0.24, 0.1]), 0.1)
    assert set(label.tolist()) == {1}
