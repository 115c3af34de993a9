"""python -m bench ops: the operations one training step dispatches, phase by phase.

At the release's sizes a step's time on a GPU is mostly the host launching kernels one by one, so the
count is what the loss code controls. Counted with a TorchDispatchMode: every dispatched torch
operation that is not a view (about one GPU kernel each), plus the Triton launches. The DP terms run
on the Triton kernels as on a GPU (through the interpreter without one; the count is the same) and
Adam is fused, as the trainer's on a GPU (train.loop.make_optimizer). Sizes do not change the count:
they are small here."""
import os
import sys

import torch  # does not import triton
from torch.utils._python_dispatch import TorchDispatchMode

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is first imported

VIEWS = {"view", "_unsafe_view", "unsqueeze", "squeeze", "expand", "slice", "select", "t", "transpose", "permute",
         "detach", "alias", "as_strided", "unbind", "split", "split_with_sizes", "unflatten", "reshape"}
PHASES = ("forward", "loss", "backward", "optimizer")


class OperationCount(TorchDispatchMode):
    """Counts dispatched operations that are not views, and Triton kernel launches."""

    def __init__(self):
        super().__init__()
        self.operations = 0
        self.launches = 0
        self._in_launch = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        # The profiler's record_function markers (the optimizer's) are dispatched too, but launch nothing.
        if not self._in_launch and func.namespace != "profiler" and func.overloadpacket.__name__ not in VIEWS:
            self.operations += 1
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        from triton.runtime import interpreter, jit
        real_run = jit.JITFunction.run
        interpreted = interpreter.GridExecutor

        def counted(run):
            def launch(*args, **kwargs):
                self.launches += 1
                self._in_launch += 1  # the interpreter's own tensor operations are not the step's
                try:
                    return run(*args, **kwargs)
                finally:
                    self._in_launch -= 1
            return launch
        self._restore = [(jit.JITFunction, "run", real_run)]
        jit.JITFunction.run = counted(real_run)
        self._restore.append((interpreted, "__call__", interpreted.__call__))
        interpreted.__call__ = counted(interpreted.__call__)
        return super().__enter__()

    def __exit__(self, *exc):
        for owner, name, real in self._restore:
            setattr(owner, name, real)
        return super().__exit__(*exc)


def count_step(model, optimizer, features, loss_of):
    """{phase: (operations, Triton launches)} of one training step."""
    counts = {}

    def phase(name, fn):
        with OperationCount() as count:
            result = fn()
        counts[name] = (count.operations, count.launches)
        return result

    out = phase("forward", lambda: model(features))
    loss = phase("loss", lambda: loss_of(out))
    phase("backward", lambda: (optimizer.zero_grad(set_to_none=True), loss.backward()))
    phase("optimizer", optimizer.step)
    return counts


def table(device=None, feature_dim=64, pairs=16, snippets=60):
    """A DataFrame: per step, the operations (and Triton launches) of each phase and in all."""
    import pandas as pd

    from ftcl.kernels.shared import checks
    from bench.bench_step import step_cases
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, _, cases = step_cases(device, feature_dim, pairs=pairs, snippets=snippets)
    optimizer = torch.optim.Adam(model.parameters(), fused=True)  # the trainer's on a GPU, on any device
    real_resolve = checks.resolve_backend
    checks.resolve_backend = lambda backend, tensors: "triton" if backend == "auto" else backend
    try:
        rows = []
        for name, (features, loss_of) in cases.items():
            count_step(model, optimizer, features, loss_of)  # the first step creates Adam's state
            counts = count_step(model, optimizer, features, loss_of)
            rows.append({"step": name, **{p: counts[p][0] for p in PHASES},
                         "total": sum(c[0] for c in counts.values()),
                         "Triton launches": sum(c[1] for c in counts.values())})
    finally:
        checks.resolve_backend = real_resolve
    frame = pd.DataFrame(rows)
    acm = frame.loc[frame["step"] == "acm-32-videos", "total"].iloc[0]
    return frame.assign(**{"ratio to ACM-Net": frame["total"] / acm})


def main(argv=()):
    from ftcl.tool import markdown
    if argv:
        print(f"error: python -m bench ops takes no arguments, got {argv[0]!r}", file=sys.stderr)
        return 2
    print(markdown(table(), floatfmt=".3g"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
