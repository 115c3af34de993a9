"""ftcl.losses: the ACM-Net loss and the contrastive terms, against hand-computed cases and the release."""
import math

import numpy as np
import pytest
import torch

from ftcl import data, kernels, losses
from ftcl.config import Config
from ftcl.model import ModelOutput
from tests.helpers import small_model


def _output(**fields):
    base = dict(scores_inst=None, scores_cont=None, scores_back=None, feat_inst=None, feat_cont=None,
                feat_back=None, attention=None, inst_cas=None, lcs_candidates=None, fsd_action=None,
                fsd_background=None)
    base.update(fields)
    return ModelOutput(**base)


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
        want = kernels.fsd_score(match.double(), gap.double(), gamma=0.1, backend="naive")
        assert fsd[p].item() == pytest.approx(want.item(), abs=1e-5)
        sim = cosine(a.lcs_candidates[p], b.lcs_candidates[p])[None]
        want = kernels.lcs_score(sim.double(), threshold=0.1, backend="naive")
        assert lcs[p].item() == pytest.approx(want.item(), abs=1e-5)
    none = losses.pair_terms(a, b, positive, Config(use_fsd=False, use_lcs=False))
    assert none == (None, None)


def test_ftcl_loss_combines_acm_and_contrasts():
    torch.manual_seed(1)
    model = small_model().train()
    x = torch.rand(4, 16, 12)
    out = model(x)
    a, b = out.select(slice(0, 2)), out.select(slice(2, None))
    labels_a = torch.tensor([[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]])
    labels_b = torch.tensor([[1.0, 0, 0, 0, 0], [0, 0, 1.0, 0, 0]])
    # The FTCL stage weighs the classification terms with ftcl_branch_weights, not the baseline's.
    config = Config(lcs_threshold=0.5, branch_weights=(7.0, 1.0, 1.0), ftcl_branch_weights=(3.0, 1.0, 2.0))
    total, terms = losses.ftcl_loss(out, torch.cat([labels_a, labels_b]), config)
    acm_terms = [losses.acm_loss(side, labels, config)[1] for side, labels in ((a, labels_a), (b, labels_b))]
    acm = sum(3 * t["inst"] + t["cont"] + 2 * t["back"] + config.lambda_guide * t["guide"]
              + config.lambda_feat * t["feat"] + config.lambda_sparse * t["sparse"] for t in acm_terms) / 2
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
    model = small_model(feature_dim=10, num_classes=3, lcs_len=6, fsd_len=2, fc_dim=8).double().train()
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
