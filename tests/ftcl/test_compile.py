"""A whole FTCL training step (model forward, FTCL loss with the registered DP ops, backward) under
torch.compile(fullgraph=True): no graph break, the values and gradients of eager."""
import pytest
import torch

from ftcl import losses
from ftcl.config import Config
from tests.helpers import CUDA, small_model


def _step_inputs(seed, pairs=3, snippets=16, feature_dim=12, classes=5):
    gen = torch.Generator().manual_seed(seed)
    features = torch.rand(2 * pairs, snippets, feature_dim, generator=gen)
    first = torch.eye(classes)[torch.randint(classes, (pairs,), generator=gen)]
    second = torch.cat([first[:1], torch.eye(classes)[torch.randint(classes, (pairs - 1,), generator=gen)]])
    return features, torch.cat([first, second])  # pair 0 positive by construction


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("compiler", ["aot_eager", "inductor"])
def test_a_compiled_ftcl_step_equals_eager(compiler, device):
    """Tolerance: aot_eager runs eager's kernels (equal to 1e-6); inductor fuses and reorders the
    float32 arithmetic (1e-4 relative). On CUDA the DP terms run on the Triton ops."""
    config = Config(lcs_threshold=0.5, fsd_gamma=0.1, lcs_gamma=0.0, lcs_len=4, fsd_len=3, dropout=0.0)
    features, labels = (t.to(device) for t in _step_inputs(0))

    def step(model, x, y):
        loss, _ = losses.ftcl_loss(model(x), y, config)
        return loss

    eager_model, compiled_model = small_model(dropout=0.0).to(device), small_model(dropout=0.0).to(device)
    compiled_model.load_state_dict(eager_model.state_dict())
    torch._dynamo.reset()
    compiled_step = torch.compile(step, fullgraph=True, backend=compiler)
    want = step(eager_model, features, labels)
    want.backward()
    got = compiled_step(compiled_model, features, labels)
    got.backward()
    tolerance = dict(rtol=1e-6, atol=1e-6) if compiler == "aot_eager" else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got, want, **tolerance)
    for (name, p), q in zip(eager_model.named_parameters(), compiled_model.parameters()):
        if p.grad is None:
            assert q.grad is None, name
        else:
            torch.testing.assert_close(q.grad, p.grad, **tolerance, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("device", [pytest.param("cuda", marks=CUDA)])
def test_steps_replayed_from_cuda_graphs_train_as_eager_ones(device):
    """--compile-mode reduce-overhead: each step (forward, FTCL loss with the Triton ops, backward)
    replayed from CUDA graphs, then an Adam step; over ten steps on fresh inputs the losses and the
    weights stay within inductor's 1e-4 of eager's."""
    config = Config(lcs_threshold=0.5, fsd_gamma=0.1, lcs_gamma=0.0, lcs_len=4, fsd_len=3, dropout=0.0)

    def step(model, x, y):
        loss, _ = losses.ftcl_loss(model(x), y, config)
        return loss

    eager_model, graph_model = small_model(dropout=0.0).to(device), small_model(dropout=0.0).to(device)
    graph_model.load_state_dict(eager_model.state_dict())
    optimizers = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in (eager_model, graph_model)]
    torch._dynamo.reset()
    graph_step = torch.compile(step, fullgraph=True, mode="reduce-overhead")
    for seed in range(10):
        features, labels = (t.to(device) for t in _step_inputs(seed))
        want = step(eager_model, features, labels)
        want.backward()
        torch.compiler.cudagraph_mark_step_begin()
        got = graph_step(graph_model, features, labels)
        got.backward()
        torch.testing.assert_close(got.detach(), want.detach(), rtol=1e-4, atol=1e-5)
        for optimizer in optimizers:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    for (name, p), q in zip(eager_model.named_parameters(), graph_model.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)
