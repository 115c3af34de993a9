"""The door of every DP operator: one table of bad calls, fed to the public functions (kernels.*) and
to the registered operators (torch.ops.ftcl.*) on every backend that runs here (Triton through the
interpreter), in a subprocess so that a crash or a memory error fails the test instead of ending the
run. Every call is refused with a one-line ValueError or RuntimeError, and both doors say the same."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Run in a fresh interpreter: each line a call, what it raised printed as one JSON line.
RUNNER = r'''
import json, sys
import torch
from ftcl import kernels

ops = torch.ops.ftcl
B, N, M = 2, 5, 4
gen = torch.Generator().manual_seed(0)
x = torch.rand(B, N, M, generator=gen)
good_lengths = torch.tensor([[5, 4], [3, 2]])
bad_lengths = {
    "past-the-table": torch.tensor([[9, 9], [3, 3]]), "too-few-rows": torch.tensor([[1, 2]]),
    "zero": torch.tensor([[0, 4], [3, 2]]), "negative": torch.tensor([[5, -1], [3, 2]]),
    "float": torch.tensor([[5.0, 4.0], [3.0, 2.0]]), "three-columns": torch.tensor([[5, 4, 1], [3, 2, 1]]),
}
bad_gammas = {"negative": -1.0, "nan": float("nan"), "inf": float("inf"), "tiny": 1e-9, "huge": 1e300}
tables = {"2-d": x[0], "int": x.to(torch.int32), "empty-rows": x[:, :0], "bool": x > 0.5}


def run(name, call):
    try:
        call()
        print(json.dumps({"case": name, "raised": None}), flush=True)
    except Exception as error:  # what was raised, whatever it is
        print(json.dumps({"case": name, "raised": type(error).__name__, "message": str(error)}), flush=True)


def cases(backend):
    """(name, public call, operator call or None) for one backend."""
    out = []
    public_backend = backend
    for key, lengths in bad_lengths.items():
        out.append((f"fsd-lengths-{key}", lambda l=lengths: kernels.fsd_score(x, x, lengths=l, backend=public_backend),
                    lambda l=lengths: ops.fsd_forward(x, x, 0.1, l, backend)))
        out.append((f"lcs-lengths-{key}", lambda l=lengths: kernels.lcs_score(x, lengths=l, backend=public_backend),
                    lambda l=lengths: ops.lcs_forward(x, 0.92, 0.0, l, backend)))
        out.append((f"sdtw-lengths-{key}",
                    lambda l=lengths: kernels.soft_dtw_score(x, lengths=l, backend=public_backend),
                    lambda l=lengths: ops.soft_dtw_forward(x, 1.0, l, None, backend)))
    for key, gamma in bad_gammas.items():
        out.append((f"fsd-gamma-{key}", lambda g=gamma: kernels.fsd_score(x, x, gamma=g, backend=public_backend),
                    lambda g=gamma: ops.fsd_forward(x, x, g, None, backend)))
        out.append((f"lcs-gamma-{key}", lambda g=gamma: kernels.lcs_score(x, gamma=g, backend=public_backend),
                    lambda g=gamma: ops.lcs_forward(x, 0.92, g, None, backend)))
        out.append((f"sdtw-gamma-{key}", lambda g=gamma: kernels.soft_dtw_score(x, gamma=g, backend=public_backend),
                    lambda g=gamma: ops.soft_dtw_forward(x, g, None, None, backend)))
    for key, table in tables.items():
        out.append((f"fsd-table-{key}", lambda t=table: kernels.fsd_score(t, t, backend=public_backend),
                    lambda t=table: ops.fsd_forward(t, t, 0.1, None, backend)))
        out.append((f"lcs-table-{key}", lambda t=table: kernels.lcs_score(t, backend=public_backend),
                    lambda t=table: ops.lcs_forward(t, 0.92, 0.0, None, backend)))
        out.append((f"sdtw-table-{key}", lambda t=table: kernels.soft_dtw_score(t, backend=public_backend),
                    lambda t=table: ops.soft_dtw_forward(t, 1.0, None, None, backend)))
    out += [
        ("fsd-shapes-differ", lambda: kernels.fsd_score(x, x[:, :4], backend=public_backend),
         lambda: ops.fsd_forward(x, x[:, :4], 0.1, None, backend)),
        ("lcs-threshold-nan", lambda: kernels.lcs_score(x, threshold=float("nan"), backend=public_backend),
         lambda: ops.lcs_forward(x, float("nan"), 0.0, None, backend)),
        ("sdtw-band-negative", lambda: kernels.soft_dtw_score(x, band=-3, backend=public_backend),
         lambda: ops.soft_dtw_forward(x, 1.0, None, -3, backend)),
    ]
    if backend == "triton":
        out.append(("fsd-float64", lambda: kernels.fsd_score(x.double(), x.double(), backend=public_backend),
                    lambda: ops.fsd_forward(x.double(), x.double(), 0.1, None, backend)))
    return out


def backward_cases(backend):
    """Calls of the backward operators with what no forward returns."""
    value, table = ops.fsd_forward(x, x, 0.1, None, backend)
    _, lcs_table = ops.lcs_forward(x, 0.92, 0.0, None, backend)
    _, sdtw_table = ops.soft_dtw_forward(x, 1.0, None, None, backend)
    grad = torch.ones(B)
    return [
        ("fsd-backward-short-table", lambda: ops.fsd_backward(grad, x, x, table[:1], 0.1, None, backend, False)),
        ("fsd-backward-grad-shape", lambda: ops.fsd_backward(torch.ones(3), x, x, table, 0.1, None, backend, False)),
        ("fsd-backward-table-dtype", lambda: ops.fsd_backward(grad, x, x, table.half(), 0.1, None, backend, False)),
        ("fsd-backward-lengths", lambda: ops.fsd_backward(grad, x, x, table, 0.1, bad_lengths["past-the-table"],
                                                          backend, False)),
        ("lcs-backward-other-table", lambda: ops.lcs_backward(grad, x[:, :3], lcs_table, 0.92, 0.0, None, backend,
                                                              False)),
        ("sdtw-backward-short-table", lambda: ops.soft_dtw_backward(grad, x, sdtw_table[:, :3], 1.0, None, None,
                                                                    backend)),
    ]


for backend in sys.argv[1:]:
    for name, public, operator in cases(backend):
        run(f"{backend}/kernels/{name}", public)
        run(f"{backend}/ops/{name}", operator)
    for name, operator in backward_cases(backend):
        run(f"{backend}/ops/{name}", operator)
for name, public, _ in cases("naive"):
    run(f"naive/kernels/{name}", public)
# Python values the operators' schema would convert (True to 1.0) are refused by the public functions.
for name, call in [("gamma-bool", lambda: kernels.fsd_score(x, x, gamma=True)),
                   ("gamma-str", lambda: kernels.lcs_score(x, gamma="0.1")),
                   ("threshold-none", lambda: kernels.lcs_score(x, threshold=None)),
                   ("band-bool", lambda: kernels.soft_dtw_score(x, band=True)),
                   ("band-float", lambda: kernels.soft_dtw_score(x, band=1.5)),
                   ("backend-none", lambda: kernels.fsd_score(x, x, backend=None)),
                   ("backend-bogus", lambda: kernels.fsd_score(x, x, backend="bogus")),
                   ("ops-backend-bogus", lambda: ops.fsd_forward(x, x, 0.1, None, "bogus")),
                   ("ops-backend-naive", lambda: ops.fsd_forward(x, x, 0.1, None, "naive")),
                   ("lengths-list", lambda: kernels.fsd_score(x, x, lengths=[[5, 9], [3, 2]])),
                   ("lengths-ragged", lambda: kernels.fsd_score(x, x, lengths=[[5], [3, 2]]))]:
    run(f"python/{name}", call)
'''


@pytest.fixture(scope="module")
def outcomes():
    env = {**os.environ, "TRITON_INTERPRET": "1", "FTCL_EVAL_WORKERS": "1"}
    done = subprocess.run([sys.executable, "-c", RUNNER, "cpu", "triton"], capture_output=True, text=True,
                          env=env, timeout=300, cwd=Path(__file__).resolve().parents[2])
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    last = lines[-1]["case"] if lines else "none"
    assert done.returncode == 0, f"the runner ended with status {done.returncode} after {last}: {done.stderr[-2000:]}"
    return {line["case"]: line for line in lines}


def test_every_bad_call_is_a_one_line_error(outcomes):
    assert len(outcomes) > 200
    for case, outcome in outcomes.items():
        assert outcome["raised"] in ("ValueError", "RuntimeError"), (case, outcome)
        assert "\n" not in outcome["message"] and outcome["message"], (case, outcome)


def test_the_public_functions_and_the_operators_say_the_same(outcomes):
    pairs = 0
    for case, outcome in outcomes.items():
        if "/kernels/" in case and case.replace("/kernels/", "/ops/") in outcomes:
            assert outcomes[case.replace("/kernels/", "/ops/")]["message"] == outcome["message"], case
            pairs += 1
    assert pairs > 90


def test_the_messages_name_what_was_wrong(outcomes):
    expect = {
        "triton/ops/fsd-lengths-past-the-table": r"lengths[0] = [9, 9] is outside 1..5 x 1..4",
        "cpu/ops/lcs-lengths-too-few-rows": "lengths must have shape [2, 2], got (1, 2)",
        "triton/ops/sdtw-lengths-zero": "lengths[0] = [0, 4] is outside 1..5 x 1..4",
        "triton/ops/sdtw-band-negative": "band must be None or a whole number >= 0",
        "cpu/ops/fsd-gamma-nan": "gamma must be a finite number >= 0, got nan",
        "triton/ops/fsd-shapes-differ": "match and gap must have the same shape",
        "triton/ops/fsd-float64": "backend 'triton' computes in float32",
        "cpu/ops/lcs-threshold-nan": "threshold must be a number, got nan",
        "triton/ops/fsd-backward-short-table": "table must be the forward's",
        "triton/ops/fsd-backward-grad-shape": "grad must be a float tensor of shape [2]",
        "python/gamma-bool": "gamma must be a number, got True",
        "python/gamma-str": "gamma must be a number, got '0.1'",
        "python/threshold-none": "threshold must be a number, got None",
        "python/band-bool": "band must be None or a whole number >= 0",
        "python/backend-none": "backend must be one of auto, naive, cpu, triton; got None",
        "python/ops-backend-naive": "backend must be one of auto, cpu, triton; got 'naive'",
        "python/lengths-list": "lengths[0] = [5, 9] is outside 1..5 x 1..4",
        "python/lengths-ragged": "lengths must be None or an integer tensor [B, 2], got list",
    }
    for case, message in expect.items():
        assert message in outcomes[case]["message"], (case, outcomes[case])
