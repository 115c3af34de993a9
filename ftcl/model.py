"""ACM-Net (three-branch attention: action instance, context, background) with FTCL's candidates.

Parameter names are those of the release, so its checkpoints load: feature_embedding.* (the
Conv1d is feature_embedding.0 on THUMOS14, feature_embedding.1 after the ActivityNet dropout),
att_branch.*, snippet_cls.*, feature_trans.*.
"""
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ModelOutput:
    """Per-branch scores and features, attention, CAS and FTCL candidates of a batch.

    scores_*: [B, C+1] softmax video scores; feat_*: [B, D] mean embedding of each branch's top-k
    snippets by attention; attention: [B, T, 3] (instance, context, background); inst_cas: [B, T, C+1]
    softmax over classes of CAS x instance attention; lcs_candidates: [B, L, D]; fsd_action,
    fsd_background: [B, F, fc_dim].
    """

    scores_inst: torch.Tensor
    scores_cont: torch.Tensor
    scores_back: torch.Tensor
    feat_inst: torch.Tensor
    feat_cont: torch.Tensor
    feat_back: torch.Tensor
    attention: torch.Tensor
    inst_cas: torch.Tensor
    lcs_candidates: torch.Tensor
    fsd_action: torch.Tensor
    fsd_background: torch.Tensor

    def select(self, index):
        """The outputs of the videos picked by index (a slice, or an index tensor along the batch)."""
        # A tensor index goes through index_select, not value[index]: the gradient of advanced indexing
        # on the CPU sums repeated videos with parallel atomic adds, in an order that changes from run
        # to run; index_select's sums them in index order, so a run is reproducible bit for bit.
        def pick(value):
            return value[index] if isinstance(index, slice) else value.index_select(0, index)

        return ModelOutput(**{name: None if value is None else pick(value) for name, value in vars(self).items()})


def _mean_of_first(ranked, k, kmax):
    """Mean of each video's first k rows. ranked: [B, kmax, K]; k: [B] int, or None when every video
    takes all kmax (an unpadded batch). Returns [B, K]."""
    if k is None:
        return ranked.sum(1) / kmax
    keep = (torch.arange(kmax, device=ranked.device)[None, :] < k[:, None]).unsqueeze(2)
    return ranked.masked_fill(~keep, 0.0).sum(1) / k[:, None].to(ranked.dtype)


def _topk_mean(values, k, kmax, valid):
    """Mean over time of the k largest values per (video, channel). values: [B, T, K]; k: [B] int, or
    None when every video takes kmax (an unpadded batch); kmax: int, k.max(); valid: [B, T] bool or
    None. Returns [B, K]."""
    top = values.topk(kmax, dim=1).values if valid is None else \
        values.masked_fill(~valid.unsqueeze(2), float("-inf")).topk(kmax, dim=1).values  # [B, kmax, K]
    return _mean_of_first(top, k, kmax)


def _ranked_indices(attention, valid):
    """Time indices sorted by descending attention (invalid snippets last). attention: [B, T]."""
    if valid is not None:
        attention = attention.masked_fill(~valid, float("-inf"))
    return attention.argsort(dim=1, descending=True, stable=True)


def _gather_time(x, idx):
    """x: [B, T, D], idx: [B, K] -> [B, K, D]."""
    return x.gather(1, idx.unsqueeze(2).expand(-1, -1, x.shape[2]))


class ACMNet(nn.Module):
    """ACM-Net with FTCL's candidate selection. Input [B, T, D] features -> ModelOutput."""

    def __init__(self, feature_dim, num_classes, *, dropout=0.7, embedding_dropout=False,
                 topk_divisors=(8, 3, 3), lcs_len=30, fsd_len=5, fc_dim=1024):
        super().__init__()
        self.topk_divisors = tuple(topk_divisors)
        self.lcs_len, self.fsd_len = lcs_len, fsd_len
        self.embedding_dropout = embedding_dropout
        self.dropout = nn.Dropout(dropout)
        conv = nn.Conv1d(feature_dim, feature_dim, kernel_size=3, padding=1)
        layers = [nn.Dropout(dropout), conv, nn.ReLU()] if embedding_dropout else [conv, nn.ReLU()]
        self.feature_embedding = nn.Sequential(*layers)
        self.att_branch = nn.Conv1d(feature_dim, 3, kernel_size=1)
        self.snippet_cls = nn.Linear(feature_dim, num_classes + 1)
        self.feature_trans = nn.Linear(feature_dim, fc_dim)

    @classmethod
    def from_config(cls, config):
        return cls(config.feature_dim, config.num_classes, dropout=config.dropout,
                   embedding_dropout=config.embedding_dropout, topk_divisors=config.topk_divisors,
                   lcs_len=config.lcs_len, fsd_len=config.fsd_len, fc_dim=config.fc_dim)

    def forward(self, features, lengths=None, localization_only=False):
        """features: [B, T, D]; lengths: optional [B] valid snippets per video (the rest is zero
        padding at the end; results for the valid part equal those of the unpadded video).
        localization_only: compute only what the test-time procedure reads (scores_inst, attention,
        inst_cas, equal to the full forward's on the valid snippets); the other fields are None."""
        batch, time, _ = features.shape
        valid = None
        # The largest top-k of each branch sizes the top-k calls. It is known on the host for an
        # unpadded batch or for lengths given on the CPU, so those make no device read-back.
        if lengths is None:
            kmaxes = [max(1, time // d) for d in self.topk_divisors]
        else:
            kmaxes = [max(1, int(lengths.max()) // d) for d in self.topk_divisors]
            lengths = lengths.to(features.device)
            valid = torch.arange(time, device=features.device)[None, :] < lengths[:, None]  # [B, T]
        embedded = self.feature_embedding(features.transpose(1, 2))  # [B, D, T]
        att_input = self.dropout(embedded) if self.embedding_dropout else embedded
        attention = self.att_branch(att_input).transpose(1, 2).softmax(dim=2)  # [B, T, 3]
        embedded = embedded.transpose(1, 2)  # [B, T, D]
        if valid is not None and not localization_only:
            # Padding snippets get a zero embedding, like the conv's own zero padding past the end.
            # The localization outputs are per snippet and the padding's are cut off, so they skip it.
            embedded = embedded * valid.unsqueeze(2)

        if self.training:
            # Snippet dropout: dropout on ones gives a mask of 0 or 1/(1-p), then regular dropout on top.
            snippet_mask = self.dropout(torch.ones(batch, time, 1, device=features.device, dtype=features.dtype))
            cas = self.snippet_cls(self.dropout(embedded * snippet_mask))  # [B, T, C+1]
        else:
            cas = self.snippet_cls(embedded)  # both dropouts are the identity: no mask to multiply by

        # Per-video top-k sizes: only a padded batch has different ones (an unpadded one takes kmax).
        ks = [None] * len(kmaxes) if lengths is None else [torch.clamp(lengths // d, min=1) for d in self.topk_divisors]
        if localization_only:
            inst_cas = cas * attention[:, :, :1]
            return ModelOutput(
                scores_inst=_topk_mean(inst_cas, ks[0], kmaxes[0], valid).softmax(dim=1), scores_cont=None,
                scores_back=None, feat_inst=None, feat_cont=None, feat_back=None, attention=attention,
                inst_cas=inst_cas.softmax(dim=2), lcs_candidates=None, fsd_action=None, fsd_background=None)
        branch_cas = [cas * attention[:, :, b:b + 1] for b in range(3)]
        scores = [_topk_mean(c, k, kmax, valid).softmax(dim=1) for c, k, kmax in zip(branch_cas, ks, kmaxes)]

        if time < 2 * self.fsd_len:
            raise ValueError(f"ACMNet: FSD takes {self.fsd_len} action and {self.fsd_len} background snippets per "
                             f"video, so the full forward needs at least {2 * self.fsd_len} snippets, got {time}")
        ranked = [_ranked_indices(attention[:, :, b], valid) for b in range(3)]
        inst_rank = ranked[0]
        indices = [ranked[b][:, :kmax] for b, kmax in enumerate(kmaxes)] + [
            inst_rank[:, :self.lcs_len].sort(dim=1).values,  # LCS candidates, in time order
            inst_rank[:, :2 * self.fsd_len].view(batch, 2, self.fsd_len).sort(dim=2).values.flatten(1)]  # FSD
        # One gather for every use of the embedding's snippets: its backward zero-fills and scatters
        # one [B, T, D] gradient instead of six.
        gathered = _gather_time(embedded, torch.cat(indices, dim=1)).split([i.shape[1] for i in indices], dim=1)
        feats = [_mean_of_first(gathered[b], ks[b], kmax) for b, kmax in enumerate(kmaxes)]
        fsd_action, fsd_background = self.feature_trans(gathered[4]).split(self.fsd_len, dim=1)
        return ModelOutput(
            scores_inst=scores[0], scores_cont=scores[1], scores_back=scores[2],
            feat_inst=feats[0], feat_cont=feats[1], feat_back=feats[2],
            attention=attention, inst_cas=branch_cas[0].softmax(dim=2),
            lcs_candidates=gathered[3], fsd_action=fsd_action, fsd_background=fsd_background)
