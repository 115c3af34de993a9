"""ACM-Net losses and FTCL's contrastive FSD / LCS terms.

Each operation here is a GPU kernel launched from Python, and at the release's sizes the launches,
not the arithmetic, set a step's time, so the terms are written with few of them (counted by
`python -m bench ops`)."""
from typing import NamedTuple

import torch

from ftcl import kernels
def pairwise_cosine(a, b, eps=1e-8):
    """Cosine similarity of every row of a with every row of b. a: [B, N, D], b: [B, M, D] -> [B, N, M]."""
    return kernels.pairwise_cosine(a, b, eps=eps)[:, 0]


# The release's baseline criterion (ACMLoss) takes log(p + 1e-45), its FTCL criterion log(p + 1e-10).
RELEASE_BASELINE_LOG_EPS = 1e-45
LOG_EPS = 1e-10


def acm_loss(out, labels, config, log_eps=LOG_EPS, stage="baseline"):
    """ACM-Net loss of a batch. out: ModelOutput; labels: [B, C] multi-hot; stage: whose classification
    weights apply (config.branch_weights, or config.ftcl_branch_weights for "ftcl"). Returns (total,
    terms) with terms a dict of detached scalars (inst, cont, back, guide, feat, sparse).

    The three classification terms are -mean_b sum_c log(p_bc + log_eps) t_bc with the targets t of the
    release: instance [y, 0] / |y|, context [y, 1] / (|y| + 1), background [0, 1]; written without
    building the targets."""
    scores = torch.stack([out.scores_inst, out.scores_cont, out.scores_back])  # [3, B, C+1]
    log_p = torch.log(scores + log_eps)
    on_labels = (log_p[:, :, :-1] * labels).sum(dim=2)  # [3, B]
    count = labels.sum(dim=1)  # [B]
    inst = -(on_labels[0] / count).mean()
    cont = -((on_labels[1] + log_p[1, :, -1]) / (count + 1)).mean()
    back = -log_p[2, :, -1].mean()
    # Guide: instance CAS's foreground (1 - background column) should follow the instance attention.
    guide = (1 - out.inst_cas[:, :, -1] - out.attention[:, :, 0].detach()).abs().sum(dim=1).mean()
    norm_inst, norm_cont, norm_back = torch.stack([out.feat_inst, out.feat_cont, out.feat_back]).norm(p=2, dim=2)
    feat = ((config.feat_margin - norm_inst + norm_cont).clamp_min(0)
            + (config.feat_margin - norm_cont + norm_back).clamp_min(0) + norm_back).pow(2).mean()
    # The release averages the per-video sums over the two branches too: mean over [B, 2].
    sparse = out.attention[:, :, :2].sum(dim=1).mean()
    w_inst, w_cont, w_back = config.ftcl_branch_weights if stage == "ftcl" else config.branch_weights
    total = (w_inst * inst + w_cont * cont + w_back * back + config.lambda_guide * guide
             + config.lambda_feat * feat + config.lambda_sparse * sparse)
    terms = {"inst": inst, "cont": cont, "back": back, "guide": guide, "feat": feat, "sparse": sparse}
    return total, {k: v.detach() for k, v in terms.items()}


def contrast_weights(positive, dtype=torch.float32):
    """[P] weights w with sum_p values[p] * w[p] = mean over negative pairs - mean over positive pairs
    (an empty side counts 0). positive: [P] bool."""
    positive = positive.to(dtype)
    n_positive = positive.sum()
    return (1 - positive) / (positive.numel() - n_positive).clamp_min(1) - positive / n_positive.clamp_min(1)


class PairSide(NamedTuple):
    """What the contrastive terms read of one side of the pairs: lcs_candidates [P, L, D], fsd_action and
    fsd_background [P, F, E] (either may be None where a side does not need it)."""

    lcs_candidates: torch.Tensor
    fsd_action: torch.Tensor
    fsd_background: torch.Tensor = None


def pair_terms(a, b, positive, config, backend="auto", rescale_lcs=False):
    """FTCL's FSD and LCS values of each pair (a[p], b[p]).

    a, b: PairSides (or ModelOutputs) of the pairs' first and second videos, [P, ...]; positive: [P]
    bool. FSD compares a's action candidates with b's action candidates on positive pairs and with b's
    "background" candidates on negative pairs; match and gap are cosine similarities of the first and
    second halves of the candidates. LCS runs on the cosine similarity s of the LCS candidates, or with
    rescale_lcs (the release's baseline) on max(0, s - config.inbatch_lcs_offset) * config.inbatch_lcs_scale.
    Returns (fsd [P] or None, lcs [P] or None) according to config.use_fsd / use_lcs.
    """
    fsd = lcs = None
    if config.use_fsd:
        other = torch.where(positive[:, None, None], b.fsd_action, b.fsd_background)
        width = a.fsd_action.shape[-1]
        if width % 2 == 0:  # both halves in one call
            match, gap = kernels.pairwise_cosine(a.fsd_action, other, parts=2).unbind(1)
        else:
            half = width // 2
            match = pairwise_cosine(a.fsd_action[..., :half], other[..., :half])
            gap = pairwise_cosine(a.fsd_action[..., half:], other[..., half:])
        fsd = kernels.fsd_score(match, gap, gamma=config.fsd_gamma, backend=backend)
    if config.use_lcs:
        sim = pairwise_cosine(a.lcs_candidates, b.lcs_candidates)
        if rescale_lcs:
            sim = (sim - config.inbatch_lcs_offset).clamp_min(0) * config.inbatch_lcs_scale
        lcs = kernels.lcs_score(sim, threshold=config.lcs_threshold, gamma=config.lcs_gamma, backend=backend)
    return fsd, lcs


def contrastive_terms(a, b, positive, config, backend="auto", rescale_lcs=False):
    """lambda_lcs * LCS contrast + lambda_fsd * FSD contrast of the pairs (a[p], b[p]), and the two
    contrasts (a disabled term counts 0). a, b: PairSides; positive: [P] bool.
    Returns (weighted sum, lcs, fsd)."""
    fsd, lcs = pair_terms(a, b, positive, config, backend, rescale_lcs)
    zero = a.lcs_candidates.new_zeros(())
    if fsd is None and lcs is None:
        return zero, zero, zero
    weights = contrast_weights(positive, (lcs if lcs is not None else fsd).dtype)
    lcs_term = lcs @ weights if lcs is not None else zero
    fsd_term = fsd @ weights if fsd is not None else zero
    return config.lambda_lcs * lcs_term + config.lambda_fsd * fsd_term, lcs_term, fsd_term


def _halves(x):
    """[2P, ...] -> its first and second P rows as views (their gradients come back as one stack, not
    as two zero-filled copies)."""
    return x.unflatten(0, (2, x.shape[0] // 2)).unbind(0)


def ftcl_loss(out, labels, config, backend="auto"):
    """The FTCL objective of a batch of P pairs whose first videos are out's first P and whose second
    videos are its last P: the ACM loss of all 2P videos (the mean of both sides' ACM losses) +
    lambda_lcs * LCS contrast + lambda_fsd * FSD contrast. A pair is positive when its videos share a
    class. out: ModelOutput of 2P videos; labels: [2P, C].
    Returns (total, terms) with terms detached (the ACM terms, lcs, fsd)."""
    if out.scores_inst.shape[0] % 2:
        raise ValueError(f"ftcl_loss takes 2P videos (the pairs' first videos, then their second), got "
                         f"{out.scores_inst.shape[0]}")
    loss, terms = acm_loss(out, labels, config, stage="ftcl")
    labels_a, labels_b = _halves(labels)
    positive = (labels_a * labels_b).sum(dim=1) > 0
    (lcs_a, lcs_b), (action_a, action_b) = _halves(out.lcs_candidates), _halves(out.fsd_action)
    background_b = out.fsd_background[out.fsd_background.shape[0] // 2:]
    weighted, lcs_term, fsd_term = contrastive_terms(PairSide(lcs_a, action_a), PairSide(lcs_b, action_b, background_b),
                                                     positive, config, backend)
    terms.update(lcs=lcs_term.detach(), fsd=fsd_term.detach())
    return loss + weighted, terms


def pair_sides(out, pairs):
    """The PairSides of the pairs (out[pairs[p, 0]], out[pairs[p, 1]]): only what the terms read (the
    first videos' background candidates are never compared). pairs: int [P, 2] tensor."""
    both = pairs.t().reshape(-1)  # [2P]: the first videos, then the second: one selection per field
    # index_select, not advanced indexing: see ModelOutput.select (a reproducible gradient on the CPU).
    (lcs_a, lcs_b), (action_a, action_b) = (_halves(x.index_select(0, both)) for x in (out.lcs_candidates,
                                                                                         out.fsd_action))
    return PairSide(lcs_a, action_a), PairSide(lcs_b, action_b, out.fsd_background.index_select(0, pairs[:, 1]))


def in_batch_loss(out, labels, pairs, positive, config, log_eps=LOG_EPS, rescale_lcs=True, backend="auto",
                  stage="baseline"):
    """The release's baseline objective (its ACMLoss): the ACM-Net loss of a batch of videos plus
    lambda_lcs * LCS contrast + lambda_fsd * FSD contrast over pairs inside the batch (see
    ftcl.data.in_batch_pairs); a batch without pairs adds nothing.
    out: ModelOutput of B videos; labels: [B, C]; pairs: int [P, 2] tensor; positive: [P] bool tensor.
    stage: whose classification weights apply (acm_loss). Returns (total, terms) with terms detached
    (ACM terms, lcs, fsd: the unweighted contrasts)."""
    loss, terms = acm_loss(out, labels, config, log_eps, stage)
    terms.update(lcs=loss.new_zeros(()), fsd=loss.new_zeros(()))
    if len(pairs):
        weighted, lcs_term, fsd_term = contrastive_terms(*pair_sides(out, pairs), positive, config, backend,
                                                         rescale_lcs)
        loss = loss + weighted
        terms.update(lcs=lcs_term.detach(), fsd=fsd_term.detach())
    return loss, terms
