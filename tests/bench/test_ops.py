"""bench.ops: the operations and Triton launches of each training step's phases."""
import pytest


def test_operation_count_skips_views_and_counts_triton_launches():
    import torch

    from bench import ops
    from ftcl import kernels
    x = torch.rand(3, 4)
    sim = torch.rand(2, 5, 6, requires_grad=True)
    with ops.OperationCount() as count:
        y = (x + 1).view(-1).unsqueeze(0).t()  # one operation, three views
        torch.mm(y.t(), y)
    assert (count.operations, count.launches) == (2, 0)
    with ops.OperationCount() as count:
        kernels.lcs_score(sim, threshold=0.5, backend="triton").sum().backward()
    # The forward and backward kernels; what the interpreter does inside them is not counted.
    assert count.launches == 2 and count.operations > 0
    assert sim.grad is not None


@pytest.mark.slow
def test_ops_table_counts_each_step_by_phase():
    from bench import ops
    table = ops.table(feature_dim=16, pairs=4, snippets=24).set_index("step")
    assert list(table.index) == ["acm-32-videos", "ftcl-16-pairs", "release-baseline-16-videos"]
    assert (table[list(ops.PHASES)].sum(axis=1) == table["total"]).all()
    assert table.loc["acm-32-videos", "Triton launches"] == 0
    assert (table.loc[["ftcl-16-pairs", "release-baseline-16-videos"], "Triton launches"] == 4).all()
    # The same model forward in every step; the pair terms add to the loss and its backward.
    assert table["forward"].nunique() == 1
    assert (table.loc["ftcl-16-pairs", ["loss", "backward"]] > table.loc["acm-32-videos", ["loss", "backward"]]).all()
