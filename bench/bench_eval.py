"""Benchmarks of the evaluation: the per-epoch evaluation of a THUMOS14-sized test split (model
forward + proposals + mAP), its stages, and the mAP CLI's work on ~35,000 predictions."""
import tempfile
from pathlib import Path

import pytest
import torch

from ftcl import evaluation, tool
from bench import eval_data
from bench.common import on_gpu, synchronized
from ftcl.evaluation.workers import default_workers
from ftcl.config import preset
from ftcl.inference import eval_batches, evaluate_model, proposal_config
from ftcl.checkpoint import cpu_copy, save_checkpoint
from ftcl.model import ACMNet


@pytest.fixture(scope="module")
def split_outputs():
    gt, ids, source = eval_data.ground_truth()
    return gt, ids, source, eval_data.model_like_outputs(gt, ids)


def _workers(param):
    """(count, label) of a "1" / "default" workers parameter."""
    count = 1 if param == "1" else default_workers()
    return count, f"{count} process{'es' if count > 1 else ''}"


@pytest.mark.parametrize("workers", ["1", "default"])
def test_proposals(benchmark, split_outputs, workers):
    gt, ids, source, outputs = split_outputs
    count, label = _workers(workers)
    benchmark.extra_info.update(stage=f"proposals ({len(ids)} videos, {label})", inputs=source, workers=count)
    benchmark.pedantic(evaluation.localize, (outputs, gt.classes, evaluation.ProposalConfig(), count), rounds=5,
                       warmup_rounds=1)


def test_map(benchmark, split_outputs):
    gt, ids, source, outputs = split_outputs
    _, results = evaluation.evaluate_outputs(outputs, gt, eval_data.TIOU)
    pred = evaluation.predictions_from_results(results["results"], gt)
    benchmark.extra_info.update(stage=f"mAP ({len(pred)} proposals, {len(eval_data.TIOU)} tIoUs)", inputs=source)
    benchmark.pedantic(evaluation.evaluate_detection, (gt.segments, pred, gt.classes, eval_data.TIOU), rounds=5,
                       warmup_rounds=1)


def test_proposals_and_map(benchmark, split_outputs):
    gt, ids, source, outputs = split_outputs
    detection, _ = evaluation.score_proposals(outputs, gt, eval_data.TIOU)
    benchmark.extra_info.update(stage="proposals + mAP", inputs=source,
                                sanity_avg_map=100 * detection.average(0.1, 0.7))
    benchmark.pedantic(evaluation.score_proposals, (outputs, gt, eval_data.TIOU), rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("workers", ["1", "default"])
def test_per_epoch_evaluation(benchmark, split_outputs, workers):
    """What training runs after every epoch: model forward on the training device (test features
    kept there), proposals and mAP, on the THUMOS14 test split's real lengths (2048-d on a GPU,
    256-d on a CPU); proposals in this process, or over the worker processes training uses
    (evaluation.workers.default_workers())."""
    gt, ids, source, _ = split_outputs
    device = "cuda" if on_gpu() else "cpu"
    dim = 2048 if device == "cuda" else 256
    count, label = _workers(workers)
    split = eval_data.thumos_sized_split(gt, ids, dim)
    config = preset("thumos14", num_classes=len(gt.classes), feature_dim=dim, classes=list(gt.classes))
    torch.manual_seed(0)
    model = ACMNet.from_config(config).to(device)
    batches = eval_batches(split, config, device)
    benchmark.extra_info.update(stage=f"per-epoch evaluation ({len(ids)} videos, {dim}-d, {device}, {label})",
                                inputs=source, workers=count)
    run = synchronized(lambda: evaluate_model(model, split, gt, config, device, batches=batches, workers=count))
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)


def test_cli_read_and_map(benchmark, split_outputs):
    gt, ids, source, _ = split_outputs
    big = eval_data.many_predictions(gt, ids)
    path = Path(tempfile.mkdtemp()) / "pred.json"
    tool.write_json_atomic(path, big)
    count = sum(len(v) for v in big["results"].values())

    def work():
        pred = evaluation.load_predictions(path, gt)
        evaluation.evaluate_detection(gt.segments, pred, gt.classes, eval_data.TIOU)

    benchmark.extra_info.update(stage=f"python -m ftcl.evaluation work: read + mAP of {count} predictions", inputs=source)
    benchmark.pedantic(work, rounds=5, warmup_rounds=1)


def test_write_results_json(benchmark, split_outputs):
    gt, ids, source, outputs = split_outputs
    _, results = evaluation.evaluate_outputs(outputs, gt, eval_data.TIOU, proposal_config(preset("thumos14")))
    path = Path(tempfile.mkdtemp()) / "results.json"
    benchmark.extra_info.update(stage="write results.json", inputs=source)
    benchmark.pedantic(tool.write_json_atomic, (path, results), rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("mode", ["in-line", "beside"])
def test_epoch_end_on_the_training_thread(benchmark, split_outputs, mode):
    """What an evaluated epoch's end costs the training thread at the release's 2048-d (checkpoint
    with Adam's moments): in line, proposals + mAP and the checkpoint write; beside the next epoch
    (train.loop.Trainer.overlap), only the copy of the state handed to the epoch-end thread. The
    thread's own work then competes with training for cores, which this case does not measure."""
    gt, ids, source, outputs = split_outputs
    device = "cuda" if on_gpu() else "cpu"
    config = preset("thumos14", num_classes=len(gt.classes), feature_dim=2048, classes=list(gt.classes))
    torch.manual_seed(0)
    model = ACMNet.from_config(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()  # Adam's moments exist, as in every checkpoint after the first step
    count = default_workers()
    path = Path(tempfile.mkdtemp()) / "last.pt"

    def state():
        return {"model_state_dict": model.state_dict(), "optimizer_state_dict": optimizer.state_dict()}

    def in_line():
        evaluation.score_proposals(outputs, gt, eval_data.TIOU, evaluation.ProposalConfig(), count)
        save_checkpoint(path, state())

    def beside():
        cpu_copy(state())

    size_mib = sum(t.numel() * t.element_size() for t in model.state_dict().values()) * 3 / 2**20
    benchmark.extra_info.update(stage=f"epoch end on the training thread, {mode} (2048-d, {device}, "
                                      f"~{size_mib:.0f} MiB of weights and Adam moments)", inputs=source)
    benchmark.pedantic(synchronized(in_line if mode == "in-line" else beside), rounds=5, warmup_rounds=1)
