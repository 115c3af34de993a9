"""What the per-cell specifications share."""
import torch


def smooth_max(values, gamma):
    """max_gamma over a list of 0-d tensors; at gamma = 0 the first maximum wins (and takes the gradient);
    NaN if any is NaN (as torch.maximum)."""
    if gamma == 0:
        best = values[0]
        for value in values[1:]:
            if value > best or value != value:
                best = value
        return best
    stacked = torch.stack(values)
    top = stacked.max().detach()  # (x - top) / gamma cannot overflow; the value does not depend on top
    if not torch.isfinite(top):
        return gamma * torch.logsumexp(stacked / gamma, dim=0)
    return top + gamma * torch.logsumexp((stacked - top) / gamma, dim=0)


