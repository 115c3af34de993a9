import os

import pytest
import torch  # does not import triton

# Without a GPU the Triton kernels run on CPU tensors through the interpreter, which must be chosen
# before triton is first imported (so before the project's modules are). With a GPU they are
# compiled and tested for real.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# Training evaluates in-process here (a worker pool forked in one test would keep that test's
# monkeypatches); the tests that check the workers ask for them.
os.environ.setdefault("FTCL_EVAL_WORKERS", "1")
# Under pytest-xdist each worker keeps to one thread: workers already share the cores, and torch's
# thread pools fighting over them made two workers slower than one.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

from ftcl import synthetic  # noqa: E402
from ftcl.train import cli as train_cli  # noqa: E402
from tests.helpers import ANNOTATIONS_VARIABLE, TRAIN, thumos14_annotations, write_json  # noqa: E402


@pytest.fixture(autouse=True)
def nan_filled_empty(monkeypatch):
    """torch.empty returns NaN-filled floats, so an output the code forgot to write cannot pass."""
    real_empty = torch.empty

    def empty(*args, **kwargs):
        out = real_empty(*args, **kwargs)
        if out.dtype.is_floating_point:
            out.fill_(float("nan"))
        return out

    monkeypatch.setattr(torch, "empty", empty)


@pytest.fixture
def thumos_annotations():
    """THUMOS14's annotation directory (FTCL_THUMOS14_ANNOTATIONS), or skip where none is named."""
    path = thumos14_annotations()
    if path is None:
        pytest.skip(f"{ANNOTATIONS_VARIABLE} names no THUMOS14 annotation directory")
    return path


@pytest.fixture(params=["rows", "chunks"])
def family(request):
    """Runs a Triton test on both kernel families (kernels.shared.launch.kernel_family): interpreted here,
    compiled on a GPU."""
    from ftcl import kernels  # after TRITON_INTERPRET is chosen above
    with kernels.configure(family=request.param):
        yield request.param


@pytest.fixture(scope="session")
def baseline_run(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "baseline"
    assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(run), *TRAIN]) == 0
    return run


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("bad") / "tiny", seed=4, num_classes=3, train_videos=10,
                              test_videos=5, feature_dim=8, min_length=16, max_length=30)


@pytest.fixture
def small_files(tmp_path):
    gt = {"database": {
        "v1": {"subset": "test", "duration": 30.0, "annotations": [
            {"segment": [1.0, 5.0], "label": "Jump"}, {"segment": [10.0, 12.0], "label": "Run"}]},
        "v2": {"subset": "test", "duration": 20.0, "annotations": [{"segment": [3.0, 9.0], "label": "Jump"}]},
        "v3": {"subset": "validation", "duration": 9.0, "annotations": [{"segment": [0.0, 2.0], "label": "Swim"}]}}}
    pred = {"results": {
        "v1": [{"label": "Jump", "score": 0.9, "segment": [1.0, 5.0]}, {"label": "Run", "score": 0.4, "segment": [0, 3]}],
        "v2": [{"label": "Jump", "score": 0.3, "segment": [3.0, 8.0]}]}}
    return write_json(tmp_path / "gt.json", gt), write_json(tmp_path / "pred.json", pred), tmp_path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("data") / "tiny", seed=3, num_classes=4, train_videos=24,
                              test_videos=8, feature_dim=16, min_length=20, max_length=40)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist: the slow tests first, so that the workers take the many short ones while
    they run; but the ahead-of-time compile last, alone, since it keeps every core busy itself."""
    def order(item):
        if item.get_closest_marker("compiles_every_kernel"):
            return 2
        return 0 if item.get_closest_marker("slow") else 1
    items.sort(key=order)
