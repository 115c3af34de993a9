"""What every backend's autograd Function shares."""
import torch


def refuse_second_derivative(op):
    """Called first in a backward that computes its gradients without a graph: under
    create_graph=True (grad mode on inside the backward) a second derivative through it would be
    silently missing, so it is refused. op names the op and backend in the message."""
    if torch.is_grad_enabled():
        raise RuntimeError(f"{op} has no second derivative (create_graph=True); the naive backend has one")
