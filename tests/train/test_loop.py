"""train.loop: the baseline and FTCL loops, exact resume, non-finite steps, epoch ends beside training."""
import io
import json
import threading

import numpy as np
import pytest
import torch

from ftcl import checkpoint, losses, synthetic
from ftcl.data import load_dataset
from ftcl.model import ACMNet
from ftcl.train import cli as train_cli
from ftcl.train.loop import Trainer, TrainingStopped
from tests.helpers import (
    CUDA,
    TRAIN,
    HostReads,
    metrics_rows,
    one_line_error,
    tiny_config,
    train_run,
)


def _small_config(data_dir, **kw):
    from ftcl.config import preset
    values = dict(data_dir=str(data_dir), sample_snippets=16, batch_size=4, epochs=1, ftcl_epochs=1, lcs_len=6,
                  fsd_len=2, fc_dim=8)
    values.update(kw)
    return preset("thumos14", **values)


def _same(a, b):
    """Nested checkpoint contents equal: tensors exactly, the rest by ==."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _round_trip(payload):
    """payload as torch.save writes it and torch.load reads it back (what a checkpoint holds)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_a_run_that_cannot_take_a_finite_step_stops_without_saving(data, tmp_path, monkeypatch):
    with pytest.raises(SystemExit):
        train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(tmp_path / "r"), "--lr", "inf"])
    trainer = Trainer("baseline", _small_config(data), tmp_path / "run", torch.device("cpu"), progress=False)
    real_step = trainer.optimizer.step

    def blow_up(*args, **kwargs):
        real_step(*args, **kwargs)
        with torch.no_grad():
            trainer.model.snippet_cls.weight[0, 0] = float("inf")

    monkeypatch.setattr(trainer.optimizer, "step", blow_up)
    with pytest.raises(TrainingStopped, match="non-finite weights \\(snippet_cls.weight\\); nothing saved"):
        trainer.run()
    assert not (tmp_path / "run" / "best.pt").exists() and not (tmp_path / "run" / "last.pt").exists()


def test_ftcl_without_a_positive_pair_is_refused(tmp_path, capsys):
    # Every training video gets its own class: no two share labels.
    root = synthetic.generate(tmp_path / "distinct", seed=2, num_classes=12, train_videos=12, test_videos=3,
                              feature_dim=8, min_length=16, max_length=20, two_class_fraction=0.0)
    database = json.loads((root / "gt.json").read_text())
    ids = (root / "split_train.txt").read_text().split()
    for k, vid in enumerate(ids):
        for ann in database["database"][vid]["annotations"]:
            ann["label"] = f"Action{k + 1:02d}"
    (root / "gt.json").write_text(json.dumps(database))
    init = tmp_path / "base"
    assert train_cli.main(["baseline", "--data-dir", str(root), "--run-dir", str(init), *TRAIN]) == 0
    capsys.readouterr()
    for extra in ([], ["--pairs", "in-batch"]):
        code = train_cli.main(["ftcl", "--data-dir", str(root), "--run-dir", str(tmp_path / "ftcl"), "--init",
                               str(init / "best.pt"), *TRAIN, *extra])
        assert code == 2
        one_line_error(capsys, "no positive pair")
    assert not (tmp_path / "ftcl" / "last.pt").exists()


def test_sample_snippets_too_few_for_the_candidates(data, tmp_path, capsys):
    code = train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(tmp_path / "run"), "--epochs", "1",
                           "--sample-snippets", "1", "--no-progress"])
    assert code == 2
    one_line_error(capsys, "--sample-snippets 1", "must be >= 10")


def test_baseline_then_ftcl_end_to_end(tiny_data, tmp_path):
    base = train_run("baseline", tiny_data, tmp_path / "baseline")
    for name in ("config.json", "metrics.csv", "last.pt", "best.pt"):
        assert (tmp_path / "baseline" / name).is_file()
    rows = metrics_rows(tmp_path / "baseline" / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"loss", "inst", "guide", "feat", "sparse", "train_acc", "mAP@0.1", "mAP@0.9", "avg0.1:0.7",
            "cls_mAP"} <= set(rows[0])
    ckpt = torch.load(tmp_path / "baseline" / "best.pt", weights_only=True)
    assert ckpt["config"]["data_dir"] == str(tiny_data.resolve()) and ckpt["kind"] == "baseline"
    assert json.loads((tmp_path / "baseline" / "config.json").read_text())["num_classes"] == 4
    assert base.best == pytest.approx(max(float(r["avg0.1:0.7"]) for r in rows), abs=1e-4)

    ftcl = train_run("ftcl", tiny_data, tmp_path / "ftcl", init=tmp_path / "baseline" / "best.pt")
    rows = metrics_rows(tmp_path / "ftcl" / "metrics.csv")
    assert len(rows) == 1 and float(rows[0]["lcs"]) != 0.0 and float(rows[0]["fsd"]) != 0.0
    assert ftcl.epoch == 1


@pytest.mark.parametrize("kind,pairs", [("baseline", "release"), ("ftcl", "release"), ("ftcl", "in-batch")])
def test_resume_continues_exactly(tiny_data, tmp_path, kind, pairs):
    init = None
    if kind == "ftcl":
        init = tmp_path / "init" / "last.pt"
        train_run("baseline", tiny_data, tmp_path / "init", epochs=1)
    straight = train_run(kind, tiny_data, tmp_path / "straight", init=init, epochs=2, ftcl_epochs=2, pairs=pairs)
    train_run(kind, tiny_data, tmp_path / "split", init=init, epochs=1, ftcl_epochs=1, pairs=pairs)
    resumed = Trainer(kind, tiny_config(tiny_data, epochs=2, ftcl_epochs=2, pairs=pairs), tmp_path / "split",
                      torch.device("cpu"), progress=False)
    resumed.resume()
    assert resumed.epoch == 1
    resumed.run()
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert metrics_rows(tmp_path / "straight" / "metrics.csv") == metrics_rows(tmp_path / "split" / "metrics.csv")


def test_nan_losses_are_skipped_then_stop_the_run(tiny_data, tmp_path, monkeypatch):
    real = losses.acm_loss
    calls = {"n": 0}

    def first_nan(out, labels, config, *args, **kwargs):
        calls["n"] += 1
        loss, terms = real(out, labels, config, *args, **kwargs)
        return (loss * float("nan") if calls["n"] == 1 else loss), terms

    monkeypatch.setattr(losses, "acm_loss", first_nan)
    trainer = train_run("baseline", tiny_data, tmp_path / "one", epochs=1)
    assert trainer.nan_steps == 1 and metrics_rows(tmp_path / "one" / "metrics.csv")[0]["nan_steps"] == "1"

    def nan_after(good):
        counter = {"n": 0}

        def loss_fn(out, labels, config, *args, **kwargs):
            counter["n"] += 1
            loss, terms = real(out, labels, config, *args, **kwargs)
            return (loss if counter["n"] <= good else loss * float("nan")), terms
        return loss_fn

    # 6 batches per epoch, NaN from the 4th step on: the streak carries over into epoch 2, where its
    # 8th NaN (step 5) stops the run.
    monkeypatch.setattr(losses, "acm_loss", nan_after(3))
    with pytest.raises(TrainingStopped, match="8 consecutive non-finite losses up to epoch 2, step 5"):
        train_run("baseline", tiny_data, tmp_path / "streak", epochs=3, max_nan_steps=8)
    monkeypatch.setattr(losses, "acm_loss", nan_after(0))
    # A streak limit longer than an epoch: the epoch itself took no finite step, which stops the run.
    with pytest.raises(TrainingStopped, match="epoch 1 took no finite step"):
        train_run("baseline", tiny_data, tmp_path / "all", epochs=2, max_nan_steps=100)
    assert not (tmp_path / "all" / "last.pt").exists() and not (tmp_path / "all" / "best.pt").exists()


def test_a_non_finite_step_changes_no_weight_moment_or_gradient(tiny_data, tmp_path, monkeypatch):
    """A step's backward is queued before its finite check is read: a non-finite step's gradients are
    dropped and the optimizer does not step, so the next step starts from the same weights and Adam
    state, with no gradients left over."""
    trainer = Trainer("baseline", tiny_config(tiny_data), tmp_path / "run", torch.device("cpu"), progress=False)
    real, seen = losses.acm_loss, []

    def second_is_nan(out, labels, config, *args, **kwargs):
        params = list(trainer.model.parameters())
        seen.append(([p.detach().clone() for p in params], [p.grad is None for p in params]))
        loss, terms = real(out, labels, config, *args, **kwargs)
        return (loss * float("nan") if len(seen) == 2 else loss), terms

    monkeypatch.setattr(losses, "acm_loss", second_is_nan)
    stepped_after = []
    real_step = trainer.optimizer.step
    trainer.optimizer.step = lambda: (stepped_after.append(len(seen)), real_step())[1]
    steps = len(trainer.objective.batches(trainer))
    trainer.train_epoch()
    assert trainer.nan_steps == 1 and stepped_after == [n for n in range(1, steps + 1) if n != 2]
    (weights_1, _), (weights_2, _), (weights_3, no_grads_3) = seen[:3]
    assert not all(torch.equal(a, b) for a, b in zip(weights_1, weights_2))
    assert all(torch.equal(a, b) for a, b in zip(weights_2, weights_3)) and all(no_grads_3)
    assert {int(state["step"]) for state in trainer.optimizer.state.values()} == {steps - 1}


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_resume_keeps_this_devices_form_of_adam(tiny_data, tmp_path, device):
    """A checkpoint resumes with the resuming device's form of Adam (torch's load_state_dict alone
    would carry the writer's "fused" over) and the moments and step counts it saved: on the CPU one
    written with the GPU's fused Adam, on a GPU one written on the CPU."""
    train_run("baseline", tiny_data, tmp_path / "run", epochs=1)
    written = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    if device == "cpu":
        for group in written["optimizer_state_dict"]["param_groups"]:
            group["fused"] = True  # as a GPU run writes it
        torch.save(written, tmp_path / "run" / "last.pt")
    resumed = Trainer("baseline", tiny_config(tiny_data, epochs=2), tmp_path / "run", torch.device(device), progress=False)
    resumed.resume()
    assert all(group["fused"] is (True if device == "cuda" else None) for group in resumed.optimizer.param_groups)
    saved = written["optimizer_state_dict"]["state"]
    for index, state in enumerate(resumed.optimizer.state_dict()["state"].values()):
        assert torch.equal(state["exp_avg"].cpu(), saved[index]["exp_avg"])
        assert float(state["step"]) == saved[index]["step"]
    resumed.run()
    assert resumed.epoch == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind,options", [("baseline", {}), ("baseline", {"objective": "acm"}), ("ftcl", {}),
                                          ("ftcl", {"pairs": "in-batch"})],
                         ids=["release-baseline", "acm-baseline", "ftcl", "ftcl-in-batch"])
def test_training_steps_never_wait_for_the_gpu(tiny_data, tmp_path, kind, options):
    """torch's sync debug mode warns at every call that waits for the device (read-backs, blocking copies
    to it): an epoch's steps make none (their finite checks wait on an event, after the backward is
    queued); its end reads the sums and the weights' finiteness (two)."""
    import warnings
    trainer = Trainer(kind, tiny_config(tiny_data, **options), tmp_path / "run", torch.device("cuda"), progress=False)
    trainer.train_epoch()  # the first epoch allocates the caches and compiles the kernels
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.train_epoch()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    waits = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
    assert len(waits) <= 2, waits


def test_release_checkpoint_without_projection_initialises_ftcl(tiny_data, tmp_path, capsys):
    config = tiny_config(tiny_data, num_classes=4, feature_dim=16)
    state = {k: v for k, v in ACMNet.from_config(config).state_dict().items() if not k.startswith("feature_trans")}
    torch.save({"epoch": 3, "model_state_dict": state}, tmp_path / "THUMOS14_best.pth")
    trainer = Trainer("ftcl", tiny_config(tiny_data), tmp_path / "run", torch.device("cpu"), progress=False)
    trainer.init_from(tmp_path / "THUMOS14_best.pth")
    assert torch.equal(trainer.model.state_dict()["att_branch.weight"], state["att_branch.weight"])
    assert "feature_trans" in capsys.readouterr().err


def test_training_batches_from_the_feature_cache_equal_those_read_from_files(tiny_data):
    from ftcl.train.loop import TrainFeatures, _sampled_batch
    split = load_dataset(tiny_data).train
    cache = TrainFeatures(split, "cpu")
    videos = np.array([3, 0, 17, 5])
    for count in (16, 32, 64):  # shorter and longer than the videos (20-40 snippets)
        from_files = _sampled_batch(split, videos, count, np.random.default_rng(count))
        from_cache = _sampled_batch(split, videos, count, np.random.default_rng(count), cache)
        assert from_files.shape == (4, count, 16) and torch.equal(from_files, from_cache)


@pytest.mark.parametrize("kind,options", [("baseline", {}), ("baseline", {"objective": "acm"}), ("ftcl", {}),
                                          ("ftcl", {"pairs": "in-batch"})],
                         ids=["release-baseline", "acm-baseline", "ftcl", "ftcl-in-batch"])
def test_a_training_step_reads_one_value_back_from_the_device(tiny_data, tmp_path, monkeypatch, kind, options):
    """On a GPU every read-back waits for the queued work: a step may read only whether its loss is
    finite; the terms and accuracy are read once per epoch (two reads), bit-identical to a per-step sum."""
    trainer = Trainer(kind, tiny_config(tiny_data, **options), tmp_path / "run", torch.device("cpu"), progress=False)
    steps = len(trainer.objective.batches(trainer))
    trainer.rng = np.random.default_rng(0)
    reads = HostReads(monkeypatch)
    with reads:
        terms, _ = trainer.train_epoch()
    assert len(reads.where) == steps + 2, sorted(set(reads.where))
    assert all(np.isfinite(v) for v in terms.values()) and terms["loss"] != 0


@pytest.mark.parametrize("lr", [1e-3, 1e-4], ids=["lr1e-3", "lr1e-4"])  # on this set: best at the last epoch, and not
@pytest.mark.parametrize("links", [True, False], ids=["hard-link", "no-links-copy"])
def test_best_checkpoint_is_written_once_and_keeps_its_epoch(tiny_data, tmp_path, monkeypatch, links, lr):
    """An improving epoch writes best.pt and makes last.pt the same file (a link, or a copy where the
    filesystem has none); the next epoch's last.pt is a new file and best.pt keeps its weights."""
    if not links:
        def no_link(*args, **kwargs):
            raise OSError("links not supported here")
        monkeypatch.setattr("os.link", no_link)
    saved = []
    real_save = checkpoint.save_checkpoint
    monkeypatch.setattr("ftcl.train.loop.save_checkpoint", lambda path, payload: (saved.append(path.name),
                                                                             real_save(path, payload)))
    trainer = train_run("baseline", tiny_data, tmp_path / "run", epochs=4, lr=lr)
    rows = metrics_rows(tmp_path / "run" / "metrics.csv")
    scores = [float(r["avg0.1:0.7"]) for r in rows]
    best_epoch = 1 + int(np.argmax(scores))
    improving = [e for e in range(1, 5) if scores[e - 1] > max(scores[:e - 1], default=-np.inf)]
    assert saved == ["best.pt" if e in improving else "last.pt" for e in range(1, 5)]
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert best["epoch"] == best_epoch and last["epoch"] == 4 and trainer.best == pytest.approx(max(scores), abs=1e-4)
    same_file = (tmp_path / "run" / "best.pt").stat().st_ino == (tmp_path / "run" / "last.pt").stat().st_ino
    assert same_file == (links and best_epoch == 4)
    weights_equal = all(torch.equal(value, last["model_state_dict"][k]) for k, value in best["model_state_dict"].items())
    assert weights_equal == (best_epoch == 4)
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]


def test_training_evaluates_identically_with_worker_processes(tiny_data, tmp_path, monkeypatch):
    """FTCL_EVAL_WORKERS spreads each epoch's proposals over processes: the same metrics and best.pt."""
    runs = {}
    for workers in ("1", "2"):
        monkeypatch.setenv("FTCL_EVAL_WORKERS", workers)
        trainer = train_run("baseline", tiny_data, tmp_path / workers, epochs=2)
        assert trainer.eval_workers == int(workers)
        rows = metrics_rows(tmp_path / workers / "metrics.csv")
        runs[workers] = [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
    assert runs["1"] == runs["2"] and float(runs["1"][-1]["avg0.1:0.7"]) > 0


def test_epoch_ends_beside_training_save_the_state_they_were_given(tiny_data, tmp_path, monkeypatch):
    """With Trainer.overlap, epoch 1's end (scoring, checkpoint, metrics) is held here until epoch 2
    has trained: it still saves epoch 1's weights, optimizer and RNG states, and the run writes what
    an in-line run writes, checkpoint by checkpoint."""
    runs = {}
    for overlap in (False, True):
        saved, trained = [], threading.Event()

        def save(path, payload, overlap=overlap, saved=saved, trained=trained):
            if overlap and payload["epoch"] == 1:
                assert trained.wait(timeout=120), "epoch 1's end did not run beside epoch 2's training"
                assert trainer.epoch == 2  # the training thread is past epoch 2
            saved.append((path.name, _round_trip(payload)))
            checkpoint.save_checkpoint(path, payload)

        monkeypatch.setattr("ftcl.train.loop.save_checkpoint", save)
        trainer = Trainer("baseline", tiny_config(tiny_data, epochs=3, lr=1e-3), tmp_path / str(overlap),
                          torch.device("cpu"), progress=False)
        trainer.overlap = overlap
        real_epoch = trainer.train_epoch

        def train_epoch(real_epoch=real_epoch, trained=trained, trainer=trainer):
            result = real_epoch()
            if trainer.epoch == 1:
                trained.set()
            return result

        trainer.train_epoch = train_epoch
        last_eval = trainer.run()
        assert last_eval is trainer.last_eval and last_eval is not None
        runs[overlap] = (saved, metrics_rows(tmp_path / str(overlap) / "metrics.csv"), trainer.best)
    (in_line, in_line_rows, in_line_best), (beside, beside_rows, beside_best) = runs[False], runs[True]
    assert [name for name, _ in beside] == [name for name, _ in in_line] and len(beside) == 3
    assert [payload["epoch"] for _, payload in beside] == [1, 2, 3]
    for (_, want), (_, got) in zip(in_line, beside):
        assert _same(want, got)
    assert beside_rows == in_line_rows and beside_best == in_line_best


def test_an_epoch_end_error_stops_the_run_and_a_training_error_waits_for_the_pending_end(tiny_data, tmp_path,
                                                                                          monkeypatch):
    """A checkpoint that cannot be written stops the run with that error by the next epoch's end at
    the latest; a training error raised while an epoch's end is still running waits for it, so
    last.pt holds the last finished epoch."""
    def full_disk(path, payload):
        if payload["epoch"] == 2:
            raise OSError(f"{path}: no space left on device")
        checkpoint.save_checkpoint(path, payload)

    monkeypatch.setattr("ftcl.train.loop.save_checkpoint", full_disk)
    trainer = Trainer("baseline", tiny_config(tiny_data, epochs=5), tmp_path / "disk", torch.device("cpu"), progress=False)
    with pytest.raises(OSError, match="no space left"):
        trainer.run()
    assert trainer.epoch <= 3 and torch.load(tmp_path / "disk" / "last.pt", weights_only=True)["epoch"] == 1

    ending, resume_ending = threading.Event(), threading.Event()

    def slow_save(path, payload):
        ending.set()
        assert resume_ending.wait(timeout=120)
        checkpoint.save_checkpoint(path, payload)

    monkeypatch.setattr("ftcl.train.loop.save_checkpoint", slow_save)
    trainer = Trainer("baseline", tiny_config(tiny_data, epochs=3), tmp_path / "stop", torch.device("cpu"), progress=False)
    real_epoch = trainer.train_epoch

    def train_epoch():
        if trainer.epoch == 1:
            assert ending.wait(timeout=120)  # epoch 1's end is saving now
            resume_ending.set()
            raise TrainingStopped("diverged")
        return real_epoch()

    trainer.train_epoch = train_epoch
    with pytest.raises(TrainingStopped, match="diverged"):
        trainer.run()
    last = torch.load(tmp_path / "stop" / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and [row["epoch"] for row in metrics_rows(tmp_path / "stop" / "metrics.csv")] == ["1"]


def test_epoch_ends_raise_their_error_once_and_outlive_an_interrupted_wait():
    from ftcl.train.loop import _EpochEnds
    ends, release, finished = _EpochEnds(threaded=True), threading.Event(), []
    ends.submit(lambda: (release.wait(timeout=120), finished.append(1)))
    future = ends.pending

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    future.result = interrupted  # Ctrl-C while the training thread waits for the end
    with pytest.raises(KeyboardInterrupt):
        ends.wait()
    assert ends.pending is future and not finished
    del future.result
    release.set()
    ends.close()
    assert finished == [1]

    ends = _EpochEnds(threaded=True)
    ends.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        ends.submit(finished.append, 2)
    assert finished == [1]
    ends.close()  # the error was raised once, by the wait that met it


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_an_epoch_end_saves_the_state_its_epoch_left(tiny_data, tmp_path, monkeypatch, device):
    """On the training device: each epoch's checkpoint holds the weights and Adam moments its epoch
    ended with, though epoch 1's end is held until epoch 2 has trained (and, on a GPU, its state was
    copied off the device while training went on)."""
    trainer = Trainer("baseline", tiny_config(tiny_data, epochs=2), tmp_path / "run", torch.device(device), progress=False)
    assert trainer.overlap
    left, saved, trained = {}, {}, threading.Event()
    real_epoch = trainer.train_epoch

    def train_epoch():
        result = real_epoch()
        left[trainer.epoch + 1] = checkpoint.cpu_copy({"model_state_dict": trainer.model.state_dict(),
                                                      "optimizer_state_dict": trainer.optimizer.state_dict()})
        if trainer.epoch + 1 == 2:
            trained.set()
        return result

    def save(path, payload):
        if payload["epoch"] == 1:
            assert trained.wait(timeout=120)
        saved[payload["epoch"]] = _round_trip(payload)
        checkpoint.save_checkpoint(path, payload)

    trainer.train_epoch = train_epoch
    monkeypatch.setattr("ftcl.train.loop.save_checkpoint", save)
    trainer.run()
    assert sorted(saved) == [1, 2]
    for epoch in (1, 2):
        for key in ("model_state_dict", "optimizer_state_dict"):
            assert _same(left[epoch][key], saved[epoch][key]), (epoch, key)
    assert not _same(left[1]["model_state_dict"], left[2]["model_state_dict"])


def test_batches_that_can_hold_no_pair_are_refused(tiny_data, tmp_path):
    """The in-batch terms (the baseline's release objective, FTCL's --pairs in-batch) need two videos
    per batch: a batch of one would train with both contrasts at 0 in every step. ACM-Net alone and
    FTCL's release pair set (a batch of pairs) take a batch of 1."""
    for kind, options in (("baseline", {}), ("ftcl", {"pairs": "in-batch"})):
        with pytest.raises(ValueError, match="--batch-size 1: a batch of one video holds no pair"):
            Trainer(kind, tiny_config(tiny_data, batch_size=1, **options), tmp_path / kind, torch.device("cpu"),
                    progress=False)
    for kind, options in (("baseline", {"objective": "acm"}), ("ftcl", {"pairs": "release"})):
        Trainer(kind, tiny_config(tiny_data, batch_size=1, **options), tmp_path / kind, torch.device("cpu"),
                progress=False)


@pytest.fixture(scope="module")
def many_classes(tmp_path_factory):
    """20 classes, as THUMOS14: an untrained model scores every video ~1/21 per class, below the
    0.25 class threshold, so training accuracy is 0 and the instance loss ~ln(C + 1)."""
    return synthetic.generate(tmp_path_factory.mktemp("plateau") / "twenty", seed=5, num_classes=20,
                              train_videos=40, test_videos=6, feature_dim=16, min_length=20, max_length=40)


def test_a_run_at_chance_is_told_and_recorded(many_classes, tiny_data, tmp_path, capsys):
    """A run whose weights cannot move (lr 1e-9) sits at chance: after --plateau-epochs epochs the log
    says so in one line and metrics.csv's plateau column turns 1; training is unchanged by it (same
    metrics as with the detection out of reach). A run that learns (train accuracy > 0) is never flagged."""
    import math

    import pandas as pd
    common = ["baseline", "--sample-snippets", "32", "--batch-size", "4", "--no-progress", "--epochs", "5"]
    flat = ["--data-dir", str(many_classes), "--lr", "1e-9"]
    assert train_cli.main([*common, *flat, "--run-dir", str(tmp_path / "flat"), "--plateau-epochs", "3"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("plateau:")]
    assert len(lines) == 1 and "3 epochs up to epoch 3 at chance" in lines[0] and "--objective acm" in lines[0]
    frame = pd.read_csv(tmp_path / "flat" / "metrics.csv")
    chance = math.log(len(json.loads((tmp_path / "flat" / "config.json").read_text())["classes"]) + 1)
    at_chance = (frame["train_acc"] == 0) & ((frame["inst"] - chance).abs() <= 0.05)
    assert at_chance.all(), frame[["inst", "train_acc"]]
    assert frame["plateau"].tolist() == [0, 0, 1, 1, 1]
    assert train_cli.main([*common, *flat, "--run-dir", str(tmp_path / "unflagged"), "--plateau-epochs", "6"]) == 0
    assert "plateau:" not in capsys.readouterr().err
    unflagged = pd.read_csv(tmp_path / "unflagged" / "metrics.csv")
    assert unflagged["plateau"].tolist() == [0] * 5
    pd.testing.assert_frame_equal(frame.drop(columns=["plateau", "seconds"]),
                                  unflagged.drop(columns=["plateau", "seconds"]))
    # A resumed run keeps its streak: flagged from the same epoch as the uninterrupted run.
    resumed = tmp_path / "resumed"
    assert train_cli.main([*common[:-1], "2", *flat, "--run-dir", str(resumed), "--plateau-epochs", "3"]) == 0
    assert train_cli.main(["baseline", "--run-dir", str(resumed), "--resume", "--epochs", "5", "--no-progress"]) == 0
    assert pd.read_csv(resumed / "metrics.csv")["plateau"].tolist() == [0, 0, 1, 1, 1]
    capsys.readouterr()
    assert train_cli.main([*common, "--data-dir", str(tiny_data), "--run-dir", str(tmp_path / "learns"),
                           "--plateau-epochs", "1"]) == 0
    learns = pd.read_csv(tmp_path / "learns" / "metrics.csv")
    assert (learns["train_acc"] > 0).all() and learns["plateau"].tolist() == [0] * 5
    assert "plateau:" not in capsys.readouterr().err


@pytest.mark.parametrize("epochs,every,evaluated", [(5, 2, [1, 3, 5]), (4, 2, [1, 3, 4]), (4, 1, [1, 2, 3, 4]),
                                                     (7, 3, [1, 4, 7]), (2, 5, [1, 2])])
def test_evaluation_cadence_is_acm_nets(data, tmp_path, epochs, every, evaluated):
    """--eval-every N evaluates epochs 1, 1 + N, ... (ACM-Net's epoch_idx % N == 0 on 0-based epochs)
    and the last; only those epochs have mAP in metrics.csv."""
    import pandas as pd
    from ftcl.train.loop import evaluated_epoch
    assert [e for e in range(1, epochs + 1) if evaluated_epoch(e, every, epochs)] == evaluated
    if (epochs, every) == (5, 2):
        run = tmp_path / "run"
        assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(run), "--epochs", str(epochs),
                               "--eval-every", str(every), "--sample-snippets", "16", "--batch-size", "4",
                               "--no-progress"]) == 0
        frame = pd.read_csv(run / "metrics.csv")
        assert frame.loc[frame["avg0.1:0.7"].notna(), "epoch"].tolist() == evaluated


def test_last_pt_is_written_on_the_checkpoint_cadence(data, tmp_path, monkeypatch):
    """--checkpoint-every 3 over 7 epochs: last.pt after epochs 3, 6 and 7 (the last), and wherever
    best.pt improved (linked); every other epoch leaves it as it was."""
    import ftcl.train.loop as loop
    written = []
    real_save, real_link = loop.save_checkpoint, loop.link_checkpoint

    def save(path, payload):
        written.append((path.name, payload["epoch"]))
        return real_save(path, payload)

    def link(source, path):
        written.append((path.name, written[-1][1]))  # right after best.pt's save
        return real_link(source, path)

    monkeypatch.setattr(loop, "save_checkpoint", save)
    monkeypatch.setattr(loop, "link_checkpoint", link)
    assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(tmp_path / "run"), "--epochs", "7",
                           "--checkpoint-every", "3", "--sample-snippets", "16", "--batch-size", "4",
                           "--no-progress"]) == 0
    best = {epoch for name, epoch in written if name == "best.pt"}
    last = [epoch for name, epoch in written if name == "last.pt"]
    assert last == sorted({3, 6, 7} | best), written
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["epoch"] == 7


@pytest.mark.slow
def test_a_run_killed_between_checkpoints_resumes_exactly_from_the_last_written(data, tmp_path):
    """A run killed (os._exit, as by SIGKILL) after epoch 5 with --checkpoint-every 4 resumes from
    the last epoch last.pt holds: its metrics and final weights equal an uninterrupted run's."""
    import subprocess
    import sys

    import pandas as pd
    common = ["baseline", "--data-dir", str(data), "--epochs", "6", "--checkpoint-every", "4", "--sample-snippets",
              "16", "--batch-size", "4", "--no-progress", "--lr", "1e-3"]
    assert train_cli.main([*common, "--run-dir", str(tmp_path / "whole")]) == 0
    killed = tmp_path / "killed"
    # The killed part runs in a subprocess with this process's thread count: the same float reductions.
    script = (f"import os, sys, torch\ntorch.set_num_threads({torch.get_num_threads()})\n"
              "from ftcl.train import loop, cli\nreal = loop.Trainer._end_epoch\n"
              "def end(self, row, *a):\n    real(self, row, *a)\n    if row['epoch'] == 5:\n        os._exit(9)\n"
              f"loop.Trainer._end_epoch = end\nsys.exit(cli.main({[*common, '--run-dir', str(killed)]!r}))\n")
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    held = torch.load(killed / "last.pt", weights_only=True)["epoch"]
    assert held <= 5 and len(pd.read_csv(killed / "metrics.csv")) == 5
    assert train_cli.main(["baseline", "--run-dir", str(killed), "--resume", "--no-progress"]) == 0
    want, got = (pd.read_csv(run / "metrics.csv").drop(columns=["seconds"]) for run in (tmp_path / "whole", killed))
    pd.testing.assert_frame_equal(got, want)
    for key, value in torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["model_state_dict"].items():
        assert torch.equal(torch.load(killed / "last.pt", weights_only=True)["model_state_dict"][key], value), key


def test_an_interrupt_writes_the_epoch_the_cadence_skipped(data, tmp_path, monkeypatch, capsys):
    """Ctrl-C during epoch 4 with --checkpoint-every 10: last.pt holds epoch 3 (written on the way
    out), as the message says."""
    real = Trainer.train_epoch

    def interrupted(self):
        if self.epoch == 3:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    run = tmp_path / "run"
    assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(run), "--epochs", "8",
                           "--checkpoint-every", "10", "--sample-snippets", "16", "--batch-size", "4",
                           "--no-progress"]) == 130
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 3
    assert "last.pt holds the last finished epoch" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("device,mode", [("cpu", "default"), pytest.param("cuda", "reduce-overhead", marks=CUDA)])
def test_compiled_steps_train_as_eager_ones(tiny_data, tmp_path, device, mode):
    """--compile (torch.compile(fullgraph=True) of each step's model and loss, the DP terms as
    registered operators): without dropout, whose random stream inductor draws differently, an epoch
    of ACM-Net and one of FTCL on the release pairs give eager's losses to 1e-4 relative (inductor
    reorders the float32 arithmetic). On CUDA with --compile-mode reduce-overhead: every step
    replayed from CUDA graphs."""
    import pandas as pd
    from tests.helpers import train_run
    runs = {}
    for compiled in (False, True):
        base = train_run("baseline", tiny_data, tmp_path / f"base-{compiled}", objective="acm", dropout=0.0, epochs=1,
                         compile_step=compiled, compile_mode=mode, device=device)
        assert base.config.compile_step == compiled and bool(base._compiled) == compiled
        train_run("ftcl", tiny_data, tmp_path / f"ftcl-{compiled}", init=str(tmp_path / "base-False" / "last.pt"),
                  dropout=0.0, compile_step=compiled, compile_mode=mode, device=device)
        runs[compiled] = [pd.read_csv(tmp_path / f"{kind}-{compiled}" / "metrics.csv") for kind in ("base", "ftcl")]
    for eager, compiled in zip(runs[False], runs[True]):
        for column in ("loss", "inst", "cont", "back", "guide", "feat", "sparse", "lcs", "fsd"):
            assert compiled[column].to_numpy() == pytest.approx(eager[column].to_numpy(), rel=1e-4, abs=1e-5), column


def test_bf16_steps_stay_near_float32_ones(tiny_data, tmp_path):
    """--precision bf16 runs the model under bfloat16 autocast: without dropout an epoch's loss terms
    stay within bfloat16's precision of float32's (2 % relative), every one finite; the checkpoint's
    weights stay float32."""
    import pandas as pd
    from tests.helpers import train_run
    frames = {}
    for precision in ("float32", "bf16"):
        trainer = train_run("baseline", tiny_data, tmp_path / precision, dropout=0.0, epochs=1, precision=precision)
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
        frames[precision] = pd.read_csv(tmp_path / precision / "metrics.csv")
    for column in ("loss", "inst", "cont", "back", "feat"):
        got, want = frames["bf16"][column].to_numpy(), frames["float32"][column].to_numpy()
        assert np.isfinite(got).all() and got == pytest.approx(want, rel=2e-2, abs=1e-2), column
    assert not (frames["bf16"]["loss"].to_numpy() == frames["float32"]["loss"].to_numpy()).all()  # it did change
