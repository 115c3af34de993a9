"""What the registered operators (kernels/*/op.py) share: fake tables and gradients, and the Triton
gradients' layout as op outputs.

An op's output may not be a view, so a Triton gradient written diagonal-major is returned as its
buffer [B, (N+M-1)*N] (zero-filled, so every output element is defined) and viewed as [B, N, M] by
the autograd formula.
"""
import torch

from ftcl.kernels.shared import checks, launch


def returned(array, like, dtype):
    """A numpy result of the CPU path as a tensor on like's device, in dtype."""
    return torch.from_numpy(array).to(device=like.device, dtype=dtype)


def fake_forward(backend, inputs):
    """The fake (values [B], table) of an op's forward on inputs [B, N, M]: the CPU path's in the
    inputs' compute dtype with a [B, N+1, M+1] float64 table, Triton's float32 with a [B, N*M] one."""
    x = inputs[0]
    batch, n_rows, n_cols = x.shape
    if checks.resolve_backend(backend, inputs) == "cpu":
        return (x.new_empty(batch, dtype=checks.compute_dtype(*inputs)),
                x.new_empty(batch, n_rows + 1, n_cols + 1, dtype=torch.float64))
    return x.new_empty(batch, dtype=torch.float32), x.new_empty(batch, n_rows * n_cols, dtype=torch.float32)


def fake_gradient(x, skew):
    """The fake of a Triton gradient of x: [B, N, M], or its diagonal-major buffer when skew."""
    return launch.diagonal_major_buffer(x.shape, x.dtype, x.device) if skew else x.new_empty(x.shape)


def triton_gradients(like, dtypes, lengths, skew):
    """(what the op returns, what the kernel writes): [B, N, M] tensors, or diagonal-major buffers
    [B, (N+M-1)*N] and their [B, N, M] views; zeros where lengths leave cells out, and in the
    buffers' padding (an op's outputs are fully defined)."""
    if not skew:
        made = [launch._gradient_like(like.shape, dtype, like.device, lengths, False) for dtype in dtypes]
        return made, made
    buffers = [launch.diagonal_major_buffer(like.shape, dtype, like.device, zero=True)
               for dtype in dtypes]
    return buffers, [launch.diagonal_major_view(buffer, like.shape) for buffer in buffers]


def as_gradient(output, shape, skew):
    """An op's Triton gradient as [B, N, M]: the diagonal-major view of its buffer when skew."""
    return launch.diagonal_major_view(output, shape) if skew else output
