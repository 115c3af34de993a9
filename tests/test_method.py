"""ftcl: sampling, pair sets, the ACM-Net model and candidates, and every loss term."""
import math

import numpy as np
import pytest
import torch

from ftcl import evaluation
from ftcl import kernels
from ftcl import data, losses
from ftcl.config import Config, preset
from ftcl.model import ACMNet, ModelOutput


def test_random_sample_longer_video_draws_one_snippet_per_stride():
    rng = np.random.default_rng(0)
    length, count = 1003, 750
    bounds = (np.arange(count) * length / count).astype(int)  # stride i is [bounds[i], bounds[i + 1]]
    for _ in range(5):
        idx = data.random_sample(length, count, rng)
        assert idx.shape == (count,)
        assert (idx[:-1] >= bounds[:-1]).all() and (idx[:-1] <= bounds[1:]).all()
        assert idx[-1] >= idx[-2]
        assert (np.diff(idx) >= 0).all() and idx[-1] < length


def test_random_sample_shorter_video_repeats_sorted_and_equal_takes_all():
    rng = np.random.default_rng(1)
    idx = data.random_sample(37, 750, rng)
    assert idx.shape == (750,) and (np.diff(idx) >= 0).all() and idx.min() >= 0 and idx.max() < 37
    assert len(np.unique(idx)) > 30  # with replacement, but covering the video
    np.testing.assert_array_equal(data.random_sample(750, 750, rng), np.arange(750))


@pytest.mark.parametrize("length,count,expected", [
    (5, 750, [0, 1, 2, 3, 4]),
    (1, 750, [0, 0]),  # read twice: the test-time interpolation needs two points
    (10, 4, [0, 2, 5, 7]),  # floor(i * 10 / 4)
    (7, 7, [0, 1, 2, 3, 4, 5, 6]),
])
def test_uniform_sample(length, count, expected):
    np.testing.assert_array_equal(data.uniform_sample(length, count), expected)


def test_release_pairs_take_identical_labels_and_as_many_disjoint():
    labels = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    pairs = data.release_pairs(labels, np.random.default_rng(0))
    as_set = {tuple(p) for p in pairs.tolist()}
    positives = {(0, 1), (0, 6), (1, 6), (2, 4)}
    assert positives <= as_set and len(pairs) == 8 and len(as_set) == 8
    for i, j in as_set - positives:
        assert i < j and not (labels[i] & labels[j]).any()
    again = data.release_pairs(labels, np.random.default_rng(1))
    assert {tuple(p) for p in again.tolist()} != as_set or not np.array_equal(again, pairs)


def _release_generate_pairs(labels):
    """The release's generate_pairs (utils/net_utils.py), loop by loop, before its negative sampling."""
    positives, negatives = [], []
    for i in range(len(labels) - 1):
        for j in range(i + 1, len(labels)):
            shared = float(np.sum(labels[i] * labels[j]))
            if shared == 1 and np.array_equal(labels[i], labels[j]):
                positives.append((i, j))
            elif shared == 0:
                negatives.append((i, j))
    return positives, negatives


def test_in_batch_pairs_are_the_release_baselines_pairs():
    labels = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]])
    # Positive: identical with exactly one class -> (0, 1), (4, 6); (2, 3) is identical but two-class.
    pairs, positive = data.in_batch_pairs(labels, np.random.default_rng(0))
    got_pos = {tuple(p) for p in pairs[positive].tolist()}
    got_neg = {tuple(p) for p in pairs[~positive].tolist()}
    want_pos, want_neg = _release_generate_pairs(labels)
    assert got_pos == set(want_pos) == {(0, 1), (4, 6)}
    assert len(got_neg) == 2 and got_neg <= set(want_neg)
    rng = np.random.default_rng(3)
    for _ in range(20):
        batch = (rng.random((16, 5)) < 0.25).astype(int)
        pairs, positive = data.in_batch_pairs(batch, rng)
        want_pos, want_neg = _release_generate_pairs(batch)
        assert {tuple(p) for p in pairs[positive].tolist()} == set(want_pos)
        negatives = {tuple(p) for p in pairs[~positive].tolist()}
        assert negatives <= set(want_neg) and len(negatives) == min(len(want_pos), len(want_neg))
        assert len(pairs) == len({tuple(p) for p in pairs.tolist()})
    none, flags = data.in_batch_pairs(np.array([[1, 0], [0, 1]]), rng)
    assert none.shape == (0, 2) and flags.shape == (0,)


def _model(feature_dim=12, num_classes=5, **kw):
    torch.manual_seed(0)
    return ACMNet(feature_dim, num_classes, lcs_len=kw.pop("lcs_len", 4), fsd_len=kw.pop("fsd_len", 3),
                  fc_dim=kw.pop("fc_dim", 6), **kw)


@pytest.mark.parametrize("time", [7, 13, 30])
def test_model_output_shapes_on_odd_lengths(time):
    model = _model().eval()
    out = model(torch.rand(3, time, 12))
    assert out.scores_inst.shape == out.scores_cont.shape == out.scores_back.shape == (3, 6)
    assert out.feat_inst.shape == (3, 12) and out.attention.shape == (3, time, 3)
    assert out.inst_cas.shape == (3, time, 6)
    assert out.lcs_candidates.shape == (3, min(4, time), 12)
    assert out.fsd_action.shape == out.fsd_background.shape == (3, 3, 6)
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(3, time))
    torch.testing.assert_close(out.scores_inst.sum(-1), torch.ones(3))


def test_padded_batch_equals_videos_run_alone():
    model = _model().eval()
    videos = [torch.rand(1, 9, 12), torch.rand(1, 13, 12)]
    padded = torch.zeros(2, 13, 12)
    padded[0, :9], padded[1] = videos[0][0], videos[1][0]
    together = model(padded, torch.tensor([9, 13]))
    for k, video in enumerate(videos):
        alone = model(video)
        n = video.shape[1]
        for name in ("scores_inst", "scores_cont", "scores_back", "feat_inst", "feat_cont", "feat_back"):
            torch.testing.assert_close(getattr(together, name)[k], getattr(alone, name)[0])
        torch.testing.assert_close(together.inst_cas[k, :n], alone.inst_cas[0])
        torch.testing.assert_close(together.attention[k, :n], alone.attention[0])


def test_candidates_follow_instance_attention_ranks_in_time_order():
    dim, time = 6, 12
    model = _model(feature_dim=dim, lcs_len=4, fsd_len=2).eval()
    with torch.no_grad():
        conv = model.feature_embedding[0]
        conv.weight.zero_()
        conv.weight[:, :, 1] = torch.eye(dim)  # embedding = relu(input)
        conv.bias.zero_()
        model.att_branch.weight.zero_()
        model.att_branch.bias.zero_()
        model.att_branch.weight[0, 0, 0] = 10.0  # instance attention grows with feature 0
    order = torch.tensor([3, 11, 0, 7, 5, 9, 1, 4, 8, 2, 10, 6])  # snippet ranked first, second, ...
    x = torch.rand(1, time, dim) + 0.1
    x[0, order, 0] = torch.linspace(1.0, 0.0, time)
    out = model(x)
    embedded = x[0]
    torch.testing.assert_close(out.lcs_candidates[0], embedded[order[:4].sort().values])
    torch.testing.assert_close(out.fsd_action[0], model.feature_trans(embedded[order[:2].sort().values]))
    torch.testing.assert_close(out.fsd_background[0], model.feature_trans(embedded[order[2:4].sort().values]))
    # Instance feature: mean embedding of the top max(12 // 8, 1) = 1 snippet by instance attention.
    torch.testing.assert_close(out.feat_inst[0], embedded[order[0]])


def test_parameter_names_load_release_checkpoints():
    names = set(_model().state_dict())
    assert {"feature_embedding.0.weight", "att_branch.weight", "snippet_cls.weight", "feature_trans.weight"} <= names
    anet = ACMNet.from_config(preset("activitynet13", feature_dim=8, num_classes=3))
    assert "feature_embedding.1.weight" in anet.state_dict()
    assert anet.topk_divisors == (2, 10, 10)


def _output(**fields):
    base = dict(scores_inst=None, scores_cont=None, scores_back=None, feat_inst=None, feat_cont=None,
                feat_back=None, attention=None, inst_cas=None, lcs_candidates=None, fsd_action=None,
                fsd_background=None)
    base.update(fields)
    return ModelOutput(**base)


def test_acm_loss_terms_on_a_hand_computed_case():
    config = Config(lambda_guide=0.5, lambda_feat=0.1, lambda_sparse=0.2, feat_margin=3.0,
                    branch_weights=(2.0, 1.0, 1.0))
    out = _output(
        scores_inst=torch.tensor([[0.5, 0.3, 0.2]]), scores_cont=torch.tensor([[0.2, 0.2, 0.6]]),
        scores_back=torch.tensor([[0.1, 0.1, 0.8]]),
        feat_inst=torch.tensor([[3.0, 4.0]]), feat_cont=torch.tensor([[0.0, 1.0]]), feat_back=torch.tensor([[0.0, 0.5]]),
        attention=torch.tensor([[[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]]),
        inst_cas=torch.tensor([[[0.7, 0.1, 0.2], [0.1, 0.1, 0.8]]]))
    labels = torch.tensor([[1.0, 0.0]])
    total, terms = losses.acm_loss(out, labels, config)
    inst = -math.log(0.5)  # target [1, 0, 0]
    cont = -(math.log(0.2) + math.log(0.6)) / 2  # target [1, 0, 1] / 2
    back = -math.log(0.8)  # target [0, 0, 1]
    guide = abs(1 - 0.2 - 0.6) + abs(1 - 0.8 - 0.2)
    feat = (max(0, 3 - 5 + 1) + max(0, 3 - 1 + 0.5) + 0.5) ** 2  # norms 5, 1, 0.5
    sparse = ((0.6 + 0.2) + (0.3 + 0.2)) / 2  # per-branch sums over time, averaged over the 2 branches
    for name, want in dict(inst=inst, cont=cont, back=back, guide=guide, feat=feat, sparse=sparse).items():
        assert terms[name].item() == pytest.approx(want, rel=1e-6), name
    want_total = 2 * inst + cont + back + 0.5 * guide + 0.1 * feat + 0.2 * sparse
    assert total.item() == pytest.approx(want_total, rel=1e-6)


def test_contrast_is_negative_mean_minus_positive_mean_with_empty_sides():
    values = torch.tensor([1.0, 2.0, 4.0, 8.0])

    def contrast(positive):
        return (values @ losses.contrast_weights(torch.tensor(positive))).item()

    assert contrast([True, False, True, False]) == pytest.approx(5 - 2.5)
    assert contrast([True] * 4) == pytest.approx(-3.75)
    assert contrast([False] * 4) == pytest.approx(3.75)


def test_pair_terms_compare_action_with_action_or_background():
    gen = torch.Generator().manual_seed(0)
    a = _output(fsd_action=torch.randn(2, 3, 8, generator=gen), lcs_candidates=torch.randn(2, 4, 5, generator=gen))
    b = _output(fsd_action=torch.randn(2, 3, 8, generator=gen), fsd_background=torch.randn(2, 3, 8, generator=gen),
                lcs_candidates=torch.randn(2, 4, 5, generator=gen))
    positive = torch.tensor([True, False])
    config = Config(lcs_threshold=0.1)
    fsd, lcs = losses.pair_terms(a, b, positive, config)

    def cosine(x, y):
        return torch.tensor([[float(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v)) for v in y.numpy()]
                             for u in x.numpy()])

    for p, other in ((0, b.fsd_action[0]), (1, b.fsd_background[1])):
        match = cosine(a.fsd_action[p, :, :4], other[:, :4])[None]
        gap = cosine(a.fsd_action[p, :, 4:], other[:, 4:])[None]
        want = kernels.fsd(match.double(), gap.double(), gamma=0.1, backend="naive")
        assert fsd[p].item() == pytest.approx(want.item(), abs=1e-5)
        sim = cosine(a.lcs_candidates[p], b.lcs_candidates[p])[None]
        want = kernels.lcs(sim.double(), threshold=0.1, backend="naive")
        assert lcs[p].item() == pytest.approx(want.item(), abs=1e-5)
    none = losses.pair_terms(a, b, positive, Config(use_fsd=False, use_lcs=False))
    assert none == (None, None)


def test_ftcl_loss_combines_acm_and_contrasts():
    torch.manual_seed(1)
    model = _model().train()
    x = torch.rand(4, 16, 12)
    out = model(x)
    a, b = out.select(slice(0, 2)), out.select(slice(2, None))
    labels_a = torch.tensor([[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]])
    labels_b = torch.tensor([[1.0, 0, 0, 0, 0], [0, 0, 1.0, 0, 0]])
    config = Config(lcs_threshold=0.5)
    total, terms = losses.ftcl_loss(out, torch.cat([labels_a, labels_b]), config)
    acm = (losses.acm_loss(a, labels_a, config)[0] + losses.acm_loss(b, labels_b, config)[0]) / 2
    fsd, lcs = losses.pair_terms(a, b, torch.tensor([True, False]), config)
    want = acm + 0.1 * (lcs[1] - lcs[0]) + 0.8 * (fsd[1] - fsd[0])
    assert total.item() == pytest.approx(want.item(), rel=1e-5)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_pairwise_cosine_gradients():
    a = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    want = torch.nn.functional.cosine_similarity(a[:, :, None], b[:, None], dim=-1)
    torch.testing.assert_close(losses.pairwise_cosine(a, b), want)
    assert torch.autograd.gradcheck(losses.pairwise_cosine, (a, b))


def test_real_thumos_pair_set_has_the_release_counts(thumos_annotations):
    """The release notes 861 identical-label pairs among the 200 training videos."""
    database = data.read_ground_truth(thumos_annotations)
    classes = evaluation.class_names(database)
    assert classes[:3] == ["BaseballPitch", "BasketballDunk", "Billiards"] and len(classes) == 20
    ids = (thumos_annotations / "split_train.txt").read_text().split()
    labels = np.zeros((len(ids), len(classes)))
    for v, vid in enumerate(ids):
        for label, _, _ in database[vid].annotations:
            labels[v, classes.index(label)] = 1
    pairs = data.release_pairs(labels, np.random.default_rng(0))
    assert len(pairs) == 2 * 861


def _release_max_gamma(values, gamma):
    """The release's maxGamma (utils/net_utils.py)."""
    z = values / gamma
    return gamma * (z.max() + torch.log(torch.exp(z - z.max()).sum()))


def _release_cosine(a, b):
    return (a / a.norm(dim=1, keepdim=True)) @ (b / b.norm(dim=1, keepdim=True)).T


def _release_fsd(a, b, gamma=0.1):
    """The release's dp_for_fsd for one pair of candidate sets [F, D], cell by cell."""
    half = a.shape[1] // 2
    m, g = _release_cosine(a[:, :half], b[:, :half]), _release_cosine(a[:, half:], b[:, half:])
    n = a.shape[0]
    table = [[torch.zeros((), dtype=a.dtype)] * (n + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, n + 1):
            neighbours = torch.stack([table[i - 1][j - 1], g[i - 1, j - 1] + table[i - 1][j],
                                      g[i - 1, j - 1] + table[i][j - 1]])
            table[i][j] = m[i - 1, j - 1] + _release_max_gamma(neighbours, gamma)
    return table[n][n]


def _release_lcs(a, b, threshold, rescale):
    """The release's dp_for_lcs of the baseline (ACMLoss: rescaled similarity) for one pair."""
    sim = _release_cosine(a, b).detach()
    if rescale:
        sim = torch.maximum(torch.zeros_like(sim), sim - 0.8) * 5
    n, m = sim.shape
    table = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            table[i][j] = (table[i - 1][j - 1] + sim[i - 1, j - 1].item() if sim[i - 1, j - 1] > threshold
                           else max(table[i - 1][j], table[i][j - 1]))
    return table[n][m]


def test_in_batch_lcs_on_a_hand_computed_batch():
    # Identical candidates give sims 1 on the diagonal -> rescaled (1 - 0.8) * 5 = 1 > 0.92: LCS 2;
    # swapped candidates match only off the diagonal: LCS 1. Positive (0, 1), one negative with 2.
    eye = torch.eye(2, dtype=torch.float64)
    cands = torch.stack([eye, eye, eye.flip(0)])
    out = _output(lcs_candidates=cands, fsd_action=torch.rand(3, 2, 4, dtype=torch.float64),
                  fsd_background=torch.rand(3, 2, 4, dtype=torch.float64))
    pairs, positive = data.in_batch_pairs(np.array([[1, 0], [1, 0], [0, 1]]), np.random.default_rng(0))
    assert pairs.tolist()[0] == [0, 1] and pairs[1, 1] == 2 and positive.tolist() == [True, False]
    config = Config(use_fsd=False)
    pairs_t, positive_t = torch.from_numpy(pairs), torch.from_numpy(positive)
    _, lcs_term, _ = losses.contrastive_terms(out.select(pairs_t[:, 0]), out.select(pairs_t[:, 1]), positive_t,
                                              config, rescale_lcs=True)
    assert lcs_term.item() == pytest.approx(1.0 - 2.0)


def test_baseline_objective_matches_the_release_acm_loss_with_in_batch_terms():
    """losses.in_batch_loss on a model's batch equals the release's ACMLoss (its ACM-Net terms with
    log(p + 1e-45), then lambda_lcs (neg - pos LCS on rescaled similarities) + lambda_fsd (act-bak
    minus act-act FSD)) computed pair by pair, and its DP values equal the naive kernels'."""
    torch.manual_seed(2)
    model = _model(feature_dim=10, num_classes=3, lcs_len=6, fsd_len=2, fc_dim=8).double().train()
    labels = torch.tensor([[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 1, 0]],
                          dtype=torch.float64)
    out = model(torch.rand(7, 20, 10, dtype=torch.float64) * 2)
    config = Config(lcs_threshold=0.92)
    pairs, positive = data.in_batch_pairs(labels.numpy(), np.random.default_rng(5))
    total, terms = losses.in_batch_loss(out, labels, torch.from_numpy(pairs), torch.from_numpy(positive), config,
                                        log_eps=losses.RELEASE_BASELINE_LOG_EPS)
    pos = [tuple(p) for p in pairs[positive].tolist()]
    neg = [tuple(p) for p in pairs[~positive].tolist()]
    assert set(pos) == {(0, 1), (0, 3), (1, 3), (2, 5)} and len(neg) == 4
    acm, _ = losses.acm_loss(out, labels, config, log_eps=1e-45)
    lcs_pos = np.mean([_release_lcs(out.lcs_candidates[i], out.lcs_candidates[j], 0.92, True) for i, j in pos])
    lcs_neg = np.mean([_release_lcs(out.lcs_candidates[i], out.lcs_candidates[j], 0.92, True) for i, j in neg])
    fsd_pos = torch.stack([_release_fsd(out.fsd_action[i], out.fsd_action[j]) for i, j in pos]).mean()
    fsd_neg = torch.stack([_release_fsd(out.fsd_action[i], out.fsd_background[j]) for i, j in neg]).mean()
    want = acm + 0.1 * (lcs_neg - lcs_pos) + 0.8 * (fsd_neg - fsd_pos)
    assert total.item() == pytest.approx(want.item(), rel=1e-9, abs=1e-9)
    assert terms["lcs"].item() == pytest.approx(lcs_neg - lcs_pos, abs=1e-9)
    assert terms["fsd"].item() == pytest.approx((fsd_neg - fsd_pos).item(), abs=1e-9)
    assert lcs_pos != 0 or lcs_neg != 0  # some rescaled similarity clears 0.92
    a, b = out.select(torch.from_numpy(pairs[:, 0])), out.select(torch.from_numpy(pairs[:, 1]))
    fsd, lcs = losses.pair_terms(a, b, torch.from_numpy(positive), config, backend="naive", rescale_lcs=True)
    fsd_fast, lcs_fast = losses.pair_terms(a, b, torch.from_numpy(positive), config, rescale_lcs=True)
    torch.testing.assert_close(fsd_fast, fsd)
    torch.testing.assert_close(lcs_fast, lcs)
    total.backward()
    assert model.feature_trans.weight.grad is not None and model.feature_trans.weight.grad.abs().sum() > 0


def test_time_scale_settings_reach_the_proposals():
    """Config.fps and frames_per_snippet set the seconds of every proposal (not literal 16 / 25);
    the true-IoU NMS keeps the same proposals at any time scale (the release's "+1" does not)."""
    from ftcl.evaluation import VideoOutput, localize
    from ftcl.inference import proposal_config
    rng = np.random.default_rng(0)
    out = {"v": VideoOutput(cas=rng.random((30, 3)) * 0.5, attention=rng.random(30), video_scores=np.array([0.9, 0.05, 0.05]),
                            original_snippets=60)}
    base = localize(out, ["a", "b", "c"], proposal_config(preset("thumos14"), fixed_nms=True))["v"]
    fast = localize(out, ["a", "b", "c"], proposal_config(preset("thumos14", fps=50), fixed_nms=True))["v"]
    long = localize(out, ["a", "b", "c"], proposal_config(preset("thumos14", frames_per_snippet=32), fixed_nms=True))["v"]
    assert base and len(base) == len(fast) == len(long)
    for (_, _, s, e), (_, _, s2, e2), (_, _, s3, e3) in zip(base, fast, long):
        assert (s2, e2) == pytest.approx((s / 2, e / 2)) and (s3, e3) == pytest.approx((2 * s, 2 * e))


def test_localization_only_forward_equals_the_full_forward():
    model = _model().eval()
    x, lengths = torch.rand(3, 17, 12), torch.tensor([17, 9, 12])
    full, light = model(x, lengths), model(x, lengths, localization_only=True)
    torch.testing.assert_close(light.scores_inst, full.scores_inst, rtol=0, atol=0)
    for k, n in enumerate(lengths.tolist()):
        for name in ("attention", "inst_cas"):
            torch.testing.assert_close(getattr(light, name)[k, :n], getattr(full, name)[k, :n], rtol=0, atol=0)
    assert light.fsd_action is None and light.lcs_candidates is None


def test_evaluation_forward_skips_only_identity_dropout():
    """In eval mode the snippet-dropout mask and dropout are skipped; with p = 0 the training path
    applies them as identities, so both modes must agree bit for bit on every field."""
    model = _model(dropout=0.0)
    x, lengths = torch.rand(3, 17, 12), torch.tensor([17, 9, 12])
    trained, evaluated = model.train()(x, lengths), model.eval()(x, lengths)
    for name, value in vars(trained).items():
        torch.testing.assert_close(getattr(evaluated, name), value, rtol=0, atol=0)


def test_full_forward_gradients_match_finite_differences():
    """Every output's gradient with respect to the features and the weights (the top-k, LCS and FSD
    snippets come from one gather whose backward sums all their uses), in float64 against central
    differences; odd length, padding, dropout off."""
    model = _model(feature_dim=6, num_classes=3, lcs_len=4, fsd_len=2, fc_dim=5, dropout=0.0).double().train()
    x = torch.rand(2, 13, 6, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([13, 9])

    def outputs(features, *weights):
        out = torch.func.functional_call(model, dict(zip(names, weights)), (features, lengths))
        return tuple(value for value in vars(out).values())

    names = [name for name, _ in model.named_parameters()]
    weights = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    assert torch.autograd.gradcheck(outputs, (x, *weights), eps=1e-6, atol=1e-6)


def test_full_forward_needs_the_fsd_snippets():
    with pytest.raises(ValueError, match="at least 6 snippets, got 5"):
        _model(fsd_len=3)(torch.rand(2, 5, 12))


def test_selecting_repeated_videos_sums_their_gradients_in_index_order():
    """The in-batch objective picks each video for several pairs (ModelOutput.select with an index
    tensor). Its gradient must be the sum in index order, bit for bit: advanced indexing's CPU
    gradient adds repeated rows with parallel atomics above torch's grain size (this tensor is
    above it), whose order, and so whose float32 result, changed from run to run."""
    gen = torch.Generator().manual_seed(0)
    candidates = torch.randn(16, 30, 96, generator=gen, requires_grad=True)  # 46,080 elements
    fields = {name: None for name in ModelOutput.__dataclass_fields__}
    out = ModelOutput(**{**fields, "lcs_candidates": candidates})
    index = torch.randint(0, 16, (120,), generator=gen)
    upstream = torch.randn(120, 30, 96, generator=gen)
    (grad,) = torch.autograd.grad((out.select(index).lcs_candidates * upstream).sum(), candidates)
    want = torch.zeros_like(candidates)
    for pair, video in enumerate(index.tolist()):
        want[video] += upstream[pair]
    assert torch.equal(grad, want)
    assert torch.equal(out.select(slice(3, 9)).lcs_candidates, candidates[3:9])
