"""ftcl.checkpoint: snapshots of the training state."""
import torch

from ftcl import checkpoint


def test_cpu_copy_snapshots_every_tensor_of_a_nested_state():
    weight = torch.nn.Parameter(torch.randn(3, 2))
    state = {"model": {"w": weight}, "steps": [torch.tensor(4.0), 7], "pair": (torch.zeros(2), "name"), "lr": 1e-4}
    before = weight.detach().clone()
    copy = checkpoint.cpu_copy(state)
    with torch.no_grad():
        weight.add_(1.0)
        state["steps"][0].add_(1.0)
        state["pair"][0].fill_(5.0)
    assert torch.equal(copy["model"]["w"], before) and not copy["model"]["w"].requires_grad
    assert copy["steps"][0].item() == 4.0 and copy["steps"][1] == 7 and copy["lr"] == 1e-4
    assert isinstance(copy["pair"], tuple) and torch.equal(copy["pair"][0], torch.zeros(2)) and copy["pair"][1] == "name"
