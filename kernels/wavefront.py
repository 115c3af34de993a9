"""The "torch" backend: FSD and LCS as a vectorised anti-diagonal wavefront (the CPU path).

All pairs of the batch advance together, one anti-diagonal d = i + j at a time (1-indexed cells).
The table is kept as diagonals indexed by the row i, `table[b, d, i] = C[i, d - i]`, zero where i = 0
or j = 0, so the three neighbours of a diagonal are plain slices of the two before it. Backward is
the reverse wavefront: each cell pushes its adjoint times its soft-max weights onto its three
predecessors, and the weights are recomputed from the saved table.
"""
import functools

import torch

from ftcl.kernels.autograd import refuse_second_derivative


@functools.lru_cache(maxsize=64)
def _diagonals(n_rows, n_cols):
    """(d, lo, hi, offset) of each anti-diagonal, and the diagonal-major order of the N*M cells."""
    spans, order, offset = [], [], 0
    for d in range(2, n_rows + n_cols + 1):
        lo, hi = max(1, d - n_cols), min(n_rows, d - 1)
        spans.append((d, lo, hi, offset))
        order.extend((i - 1) * n_cols + (d - i - 1) for i in range(lo, hi + 1))
        offset += hi - lo + 1
    return tuple(spans), torch.tensor(order, dtype=torch.long)


def compute_dtype(*tensors):
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _to_skewed(x, order, lengths, dtype):
    """[B, N, M] -> [B, N*M] in diagonal-major order; zero outside each pair's (n, m) rectangle."""
    batch, n_rows, n_cols = x.shape
    skewed = x.reshape(batch, n_rows * n_cols).to(dtype).index_select(1, order)
    if lengths is not None:
        rows, cols = order // n_cols, order % n_cols
        inside = (rows[None, :] < lengths[:, :1]) & (cols[None, :] < lengths[:, 1:])
        # Padding may hold anything; zeroing it keeps every weight outside the rectangle finite, so
        # the (zero) adjoints there cannot turn into NaN on the way back.
        skewed = torch.where(inside, skewed, torch.zeros((), dtype=dtype, device=x.device))
    return skewed


def _from_skewed(grad_skewed, order, shape, dtype):
    batch, n_rows, n_cols = shape
    grad = torch.zeros(batch, n_rows * n_cols, dtype=grad_skewed.dtype, device=grad_skewed.device)
    grad.index_copy_(1, order, grad_skewed)
    return grad.reshape(shape).to(dtype)


def _end_cells(lengths, shape, device):
    """Per pair, the (diagonal, row) of its answer cell (n, m)."""
    batch, n_rows, n_cols = shape
    if lengths is None:
        rows = torch.full((batch,), n_rows, dtype=torch.long, device=device)
        return rows + n_cols, rows
    return lengths[:, 0] + lengths[:, 1], lengths[:, 0].clone()


class _Seeds:
    """Adds the upstream gradient at each pair's answer cell when the reverse wavefront reaches it."""

    def __init__(self, grad_out, lengths, shape):
        self.grad_out = grad_out
        self.by_diag = {}
        batch, n_rows, n_cols = shape
        # Without lengths every answer cell is (N, M), known here without reading the device.
        ends = lengths.tolist() if lengths is not None else [(n_rows, n_cols)] * batch
        for b, (n, m) in enumerate(ends):
            d, i = n + m, n
            self.by_diag.setdefault(d, ([], []))
            self.by_diag[d][0].append(b)
            self.by_diag[d][1].append(i)

    def add(self, adjoint, d, lo):
        if d in self.by_diag:
            pairs, rows = self.by_diag[d]
            pairs_t = torch.tensor(pairs, device=adjoint.device)
            rows_t = torch.tensor(rows, device=adjoint.device) - lo
            adjoint[pairs_t, rows_t] += self.grad_out[pairs_t]
        return adjoint


def _answer(table, end_diag, end_row):
    batch = table.shape[0]
    return table[torch.arange(batch, device=table.device), end_diag, end_row]


def fsd_forward(match, gap, gamma, lengths):
    """Returns (values [B], table [B, N+M+1, N+1], skewed match, skewed gap) in the compute dtype."""
    batch, n_rows, n_cols = match.shape
    dtype = compute_dtype(match, gap)
    spans, order = _diagonals(n_rows, n_cols)
    order = order.to(match.device)
    match_s = _to_skewed(match, order, lengths, dtype)
    gap_s = _to_skewed(gap, order, lengths, dtype)
    table = torch.zeros(batch, n_rows + n_cols + 1, n_rows + 1, dtype=dtype, device=match.device)
    for d, lo, hi, off in spans:
        width = hi - lo + 1
        g = gap_s[:, off:off + width]
        diag = table[:, d - 2, lo - 1:hi]
        up = table[:, d - 1, lo - 1:hi] + g
        left = table[:, d - 1, lo:hi + 1] + g
        if gamma == 0:
            best = torch.maximum(torch.maximum(diag, up), left)
        else:
            best = gamma * torch.logsumexp(torch.stack((diag, up, left)) / gamma, dim=0)
        table[:, d, lo:hi + 1] = match_s[:, off:off + width] + best
    end_diag, end_row = _end_cells(lengths, match.shape, match.device)
    return _answer(table, end_diag, end_row), table, match_s, gap_s


class _Pushes:
    """What the reverse wavefront carries between diagonals: each cell's adjoint times its weight
    towards its diagonal (i-1, j-1), upper (i-1, j) and left (i, j-1) predecessor, indexed by the
    pushing cell's row. Ring buffers over the last 3 (diagonal) and 2 (upper, left) diagonals."""

    def __init__(self, batch, n_rows, like):
        self.diag = [like.new_zeros(batch, n_rows + 2) for _ in range(3)]
        self.up = [like.new_zeros(batch, n_rows + 2) for _ in range(2)]
        self.left = [like.new_zeros(batch, n_rows + 2) for _ in range(2)]

    def adjoint(self, d, lo, hi):
        """[B, hi - lo + 1] adjoint of diagonal d: the sum of what its successors pushed."""
        return (self.diag[(d + 2) % 3][:, lo + 1:hi + 2] + self.up[(d + 1) % 2][:, lo + 1:hi + 2]
                + self.left[(d + 1) % 2][:, lo:hi + 1])

    def push(self, d, lo, hi, to_diag, to_up, to_left):
        for ring, slot, value in ((self.diag, d % 3, to_diag), (self.up, d % 2, to_up), (self.left, d % 2, to_left)):
            ring[slot].zero_()
            ring[slot][:, lo:hi + 1] = value


def fsd_backward(grad_out, table, gap_s, gamma, lengths, shape):
    """Gradients (skewed [B, N*M]) of sum(grad_out * value) w.r.t. match and gap."""
    batch, n_rows, n_cols = shape
    spans, _ = _diagonals(n_rows, n_cols)
    seeds = _Seeds(grad_out.to(table.dtype), lengths, shape)
    pushes = _Pushes(batch, n_rows, table)
    grad_match = torch.zeros_like(gap_s)
    grad_gap = torch.zeros_like(gap_s)
    for d, lo, hi, off in reversed(spans):
        width = hi - lo + 1
        adjoint = seeds.add(pushes.adjoint(d, lo, hi), d, lo)
        g = gap_s[:, off:off + width]
        candidates = torch.stack((table[:, d - 2, lo - 1:hi], table[:, d - 1, lo - 1:hi] + g,
                                  table[:, d - 1, lo:hi + 1] + g))  # [3, B, width]
        if gamma == 0:
            first = candidates.argmax(dim=0)  # the first maximum, as the forward's tie rule
            weights = torch.nn.functional.one_hot(first, 3).movedim(-1, 0).to(table.dtype)
        else:
            weights = torch.softmax(candidates / gamma, dim=0)
        pushed = adjoint * weights
        grad_match[:, off:off + width] = adjoint
        grad_gap[:, off:off + width] = pushed[1] + pushed[2]
        pushes.push(d, lo, hi, pushed[0], pushed[1], pushed[2])
    return grad_match, grad_gap


def lcs_forward(sim, threshold, gamma, lengths):
    """Returns (values [B], table [B, N+M+1, N+1], skewed sim) in the compute dtype."""
    batch, n_rows, n_cols = sim.shape
    dtype = compute_dtype(sim)
    spans, order = _diagonals(n_rows, n_cols)
    order = order.to(sim.device)
    sim_s = _to_skewed(sim, order, lengths, dtype)
    table = torch.zeros(batch, n_rows + n_cols + 1, n_rows + 1, dtype=dtype, device=sim.device)
    for d, lo, hi, off in spans:
        s = sim_s[:, off:off + hi - lo + 1]
        up, left = table[:, d - 1, lo - 1:hi], table[:, d - 1, lo:hi + 1]
        if gamma == 0:
            skip = torch.maximum(up, left)
        else:
            skip = gamma * torch.logaddexp(up / gamma, left / gamma)
        table[:, d, lo:hi + 1] = torch.where(s > threshold, table[:, d - 2, lo - 1:hi] + s, skip)
    end_diag, end_row = _end_cells(lengths, sim.shape, sim.device)
    return _answer(table, end_diag, end_row), table, sim_s


def lcs_backward(grad_out, table, sim_s, threshold, gamma, lengths, shape):
    """Gradient (skewed [B, N*M]) of sum(grad_out * value) w.r.t. sim."""
    batch, n_rows, n_cols = shape
    spans, _ = _diagonals(n_rows, n_cols)
    seeds = _Seeds(grad_out.to(table.dtype), lengths, shape)
    pushes = _Pushes(batch, n_rows, table)
    grad_sim = torch.zeros_like(sim_s)
    zero = table.new_zeros(())
    for d, lo, hi, off in reversed(spans):
        width = hi - lo + 1
        adjoint = seeds.add(pushes.adjoint(d, lo, hi), d, lo)
        matched = sim_s[:, off:off + width] > threshold
        up, left = table[:, d - 1, lo - 1:hi], table[:, d - 1, lo:hi + 1]
        if gamma == 0:
            weight_up = (up >= left).to(table.dtype)  # ties go to the upper neighbour
        else:
            weight_up = torch.sigmoid((up - left) / gamma)
        through_diag = torch.where(matched, adjoint, zero)
        skipped = adjoint - through_diag
        grad_sim[:, off:off + width] = through_diag
        pushes.push(d, lo, hi, through_diag, skipped * weight_up, skipped * (1 - weight_up))
    return grad_sim


class FSDFunction(torch.autograd.Function):
    """FSD values [B] of match, gap [B, N, M] (lengths [B, 2] or None) with torch operations, one
    per diagonal; gradients in the inputs' dtypes."""

    @staticmethod
    def forward(ctx, match, gap, gamma, lengths):
        value, table, match_s, gap_s = fsd_forward(match, gap, gamma, lengths)
        ctx.save_for_backward(table, match_s, gap_s, lengths)
        ctx.gamma, ctx.shape, ctx.dtypes = gamma, match.shape, (match.dtype, gap.dtype)
        return value

    @staticmethod
    def backward(ctx, grad_out):
        refuse_second_derivative("kernels.fsd (torch backend)")
        table, match_s, gap_s, lengths = ctx.saved_tensors
        grad_match_s, grad_gap_s = fsd_backward(grad_out, table, gap_s, ctx.gamma, lengths, ctx.shape)
        _, order = _diagonals(ctx.shape[1], ctx.shape[2])
        order = order.to(table.device)
        return (_from_skewed(grad_match_s, order, ctx.shape, ctx.dtypes[0]),
                _from_skewed(grad_gap_s, order, ctx.shape, ctx.dtypes[1]), None, None)


class LCSFunction(torch.autograd.Function):
    """LCS values [B] of sim [B, N, M] (lengths [B, 2] or None) with torch operations, one per
    diagonal; the gradient in sim's dtype."""

    @staticmethod
    def forward(ctx, sim, threshold, gamma, lengths):
        value, table, sim_s = lcs_forward(sim, threshold, gamma, lengths)
        ctx.save_for_backward(table, sim_s, lengths)
        ctx.threshold, ctx.gamma, ctx.shape, ctx.dtype = threshold, gamma, sim.shape, sim.dtype
        return value

    @staticmethod
    def backward(ctx, grad_out):
        refuse_second_derivative("kernels.lcs (torch backend)")
        table, sim_s, lengths = ctx.saved_tensors
        grad_sim_s = lcs_backward(grad_out, table, sim_s, ctx.threshold, ctx.gamma, lengths, ctx.shape)
        _, order = _diagonals(ctx.shape[1], ctx.shape[2])
        return _from_skewed(grad_sim_s, order.to(table.device), ctx.shape, ctx.dtype), None, None, None
