"""The torch backend's machinery every DP shares: a vectorised anti-diagonal wavefront (the CPU path).

All pairs of the batch advance together, one anti-diagonal d = i + j at a time (1-indexed cells).
A table is kept as diagonals indexed by the row i, `table[b, d, i] = C[i, d - i]`, so the three
neighbours of a diagonal are plain slices of the two before it. Backward is the reverse wavefront:
each cell pushes its adjoint times its weights onto its three predecessors (_Pushes), the weights
recomputed from the saved table; _Seeds adds the upstream gradient at each pair's answer cell.
"""
import functools

import torch


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


def shift(extreme):
    """Where a smooth max (or min) is taken from: the hard one, or 0 where that is not finite (an
    unreachable cell's +inf, a NaN), so that (x - shift) / gamma cannot overflow where the answer is
    finite and the non-finite answers come out as they are."""
    return torch.where(extreme.isfinite(), extreme, torch.zeros((), dtype=extreme.dtype, device=extreme.device))


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


def full_lengths(shape, device):
    """[B, 2] (N, M) of every pair: the lengths of a call without them."""
    batch, n_rows, n_cols = shape
    return torch.tensor([[n_rows, n_cols]], device=device).expand(batch, 2)
