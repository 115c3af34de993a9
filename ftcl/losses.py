"""ACM-Net losses and FTCL's contrastive FSD / LCS terms."""
import torch

import kernels


def pairwise_cosine(a, b, eps=1e-8):
    """Cosine similarity of every row of a with every row of b. a: [B, N, D], b: [B, M, D] -> [B, N, M]."""
    return kernels.pairwise_cosine(a, b, eps=eps)[:, 0]


# The release's baseline criterion (ACMLoss) takes log(p + 1e-45), its FTCL criterion log(p + 1e-10).
RELEASE_BASELINE_LOG_EPS = 1e-45
LOG_EPS = 1e-10


def _classification(scores, target, log_eps):
    """-mean_b sum_c log(p + log_eps) * target. scores, target: [B, C+1]."""
    return -(torch.log(scores + log_eps) * target).sum(dim=1).mean()


def acm_loss(out, labels, config, log_eps=LOG_EPS):
    """ACM-Net loss of a batch. out: ModelOutput; labels: [B, C] multi-hot. Returns (total, terms)
    with terms a dict of detached scalars (inst, cont, back, guide, feat, sparse)."""
    batch = labels.shape[0]
    zeros, ones = labels.new_zeros(batch, 1), labels.new_ones(batch, 1)
    targets = [torch.cat([labels, zeros], 1), torch.cat([labels, ones], 1), torch.cat([torch.zeros_like(labels), ones], 1)]
    targets = [t / t.sum(dim=1, keepdim=True) for t in targets]
    cls = [_classification(s, t, log_eps) for s, t in zip((out.scores_inst, out.scores_cont, out.scores_back), targets)]
    # Guide: instance CAS's foreground (1 - background column) should follow the instance attention.
    guide = (1 - out.inst_cas[:, :, -1] - out.attention[:, :, 0].detach()).abs().sum(dim=1).mean()
    norm_inst, norm_cont, norm_back = (f.norm(p=2, dim=1) for f in (out.feat_inst, out.feat_cont, out.feat_back))
    feat = ((config.feat_margin - norm_inst + norm_cont).clamp_min(0)
            + (config.feat_margin - norm_cont + norm_back).clamp_min(0) + norm_back).pow(2).mean()
    # The release averages the per-video sums over the two branches too: mean over [B, 2].
    sparse = out.attention[:, :, :2].sum(dim=1).mean()
    w_inst, w_cont, w_back = config.branch_weights
    total = (w_inst * cls[0] + w_cont * cls[1] + w_back * cls[2] + config.lambda_guide * guide
             + config.lambda_feat * feat + config.lambda_sparse * sparse)
    terms = {"inst": cls[0], "cont": cls[1], "back": cls[2], "guide": guide, "feat": feat, "sparse": sparse}
    return total, {k: v.detach() for k, v in terms.items()}


def contrast(values, positive):
    """Mean over negative pairs minus mean over positive pairs (an empty side counts 0). values: [P]."""
    positive = positive.to(values.dtype)
    negative = 1 - positive
    return (values * negative).sum() / negative.sum().clamp_min(1) - (values * positive).sum() / positive.sum().clamp_min(1)


def pair_terms(a, b, positive, config, backend="auto", rescale_lcs=False):
    """FTCL's FSD and LCS values of each pair (a[p], b[p]).

    a, b: ModelOutputs (or anything with fsd_action, fsd_background, lcs_candidates) of the pairs'
    first and second videos, [P, ...]; positive: [P] bool. FSD compares a's action candidates with b's
    action candidates on positive pairs and with b's "background" candidates on negative pairs;
    match and gap are cosine similarities of the first and second halves of the candidates. LCS runs
    on the cosine similarity s of the LCS candidates, or with rescale_lcs (the release's baseline) on
    max(0, s - config.inbatch_lcs_offset) * config.inbatch_lcs_scale.
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
        fsd = kernels.fsd(match, gap, gamma=config.fsd_gamma, backend=backend)
    if config.use_lcs:
        sim = pairwise_cosine(a.lcs_candidates, b.lcs_candidates)
        if rescale_lcs:
            sim = (sim - config.inbatch_lcs_offset).clamp_min(0) * config.inbatch_lcs_scale
        lcs = kernels.lcs(sim, threshold=config.lcs_threshold, gamma=config.lcs_gamma, backend=backend)
    return fsd, lcs


def contrastive_terms(a, b, positive, config, backend="auto", rescale_lcs=False):
    """lambda_lcs * LCS contrast + lambda_fsd * FSD contrast of the pairs (a[p], b[p]), and the two
    contrasts (a disabled term counts 0). positive: [P] bool. Returns (weighted sum, lcs, fsd)."""
    fsd, lcs = pair_terms(a, b, positive, config, backend, rescale_lcs)
    zero = a.lcs_candidates.new_zeros(())
    lcs_term = contrast(lcs, positive) if lcs is not None else zero
    fsd_term = contrast(fsd, positive) if fsd is not None else zero
    return config.lambda_lcs * lcs_term + config.lambda_fsd * fsd_term, lcs_term, fsd_term


def ftcl_loss(a, b, labels_a, labels_b, config, backend="auto"):
    """The FTCL objective of a batch of pairs: mean ACM loss of both sides + lambda_lcs * LCS contrast
    + lambda_fsd * FSD contrast. A pair is positive when the videos share a class.
    Returns (total, terms) with terms detached (ACM terms averaged over both sides, plus lcs, fsd)."""
    loss_a, terms_a = acm_loss(a, labels_a, config)
    loss_b, terms_b = acm_loss(b, labels_b, config)
    positive = (labels_a * labels_b).sum(dim=1) > 0
    weighted, lcs_term, fsd_term = contrastive_terms(a, b, positive, config, backend)
    terms = {k: (terms_a[k] + terms_b[k]) / 2 for k in terms_a}
    terms.update(lcs=lcs_term.detach(), fsd=fsd_term.detach())
    return (loss_a + loss_b) / 2 + weighted, terms


def in_batch_loss(out, labels, pairs, positive, config, log_eps=LOG_EPS, rescale_lcs=True, backend="auto"):
    """The release's baseline objective (its ACMLoss): the ACM-Net loss of a batch of videos plus
    lambda_lcs * LCS contrast + lambda_fsd * FSD contrast over pairs inside the batch (see
    ftcl.data.in_batch_pairs); a batch without pairs adds nothing.
    out: ModelOutput of B videos; labels: [B, C]; pairs: int [P, 2] tensor; positive: [P] bool tensor.
    Returns (total, terms) with terms detached (ACM terms, lcs, fsd: the unweighted contrasts)."""
    loss, terms = acm_loss(out, labels, config, log_eps)
    terms.update(lcs=loss.new_zeros(()), fsd=loss.new_zeros(()))
    if len(pairs):
        weighted, lcs_term, fsd_term = contrastive_terms(out.select(pairs[:, 0]), out.select(pairs[:, 1]), positive,
                                                         config, backend, rescale_lcs)
        loss = loss + weighted
        terms.update(lcs=lcs_term.detach(), fsd=fsd_term.detach())
    return loss, terms
