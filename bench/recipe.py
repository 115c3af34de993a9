"""The release's THUMOS14 recipe end to end, timed phase by phase: `python -m bench recipe [--scale F]`.

Builds a THUMOS14-sized generated set once (200 train + 210 test videos with THUMOS14's real
lengths when FTCL_THUMOS14_ANNOTATIONS names its annotations (bench.eval_data), else 200 + 200
synthetic ones; 2048-d on a GPU, 256-d on a CPU unless --feature-dim), then runs the recipe: the
baseline objective (ACM-Net + in-batch FSD / LCS) for 500 x F epochs and FTCL for 25 x F epochs (at
least one each), evaluating the test split after every epoch. Prints the time of each phase: data
loading, training steps (baseline, FTCL), the evaluation's model forward, its proposals + mAP,
checkpoint / log writing. The last two run beside the next
epoch's training (train.loop.Trainer.overlap; --sequential runs them in line), so the total is the
measured wall time of each stage, not the sum of the phases. When scaled, each figure is projected
to the full 500 + 25 epochs.
"""
import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

from bench.common import RESULTS_DIR, machine
from bench import eval_data
from ftcl import tool
from ftcl.tool import markdown
from ftcl import synthetic
from ftcl.config import COMPILE_MODES, Config, compile_mode_error, preset
from ftcl.seed import resolve_device
from ftcl.train import loop
from ftcl.train.loop import Trainer

FULL_EPOCHS = {"baseline": 500, "ftcl": 25}


def thumos_lengths():
    """(train, test) snippet counts of THUMOS14's videos (durations / 0.64 s), or None without its
    annotations."""
    annotations = eval_data.ANNOTATIONS
    if annotations is None:
        return None
    database = json.loads((annotations / "gt.json").read_text())["database"]
    seconds = Config().seconds_per_snippet
    return tuple([max(2, int(database[vid]["duration"] / seconds)) for vid in (annotations / f"split_{name}.txt").read_text().split()]
                 for name in ("train", "test"))


def recipe_data(feature_dim, root=RESULTS_DIR / "recipe-data"):
    """The generated THUMOS14-sized set for this feature dimension (built on first use), named by
    where its video lengths come from."""
    lengths = thumos_lengths()
    target = Path(root) / f"{'thumos14' if lengths else 'generated'}-lengths-{feature_dim}d"
    if not (target / "gt.json").is_file():
        synthetic.generate(target, feature_dim=feature_dim, lengths=lengths)
    return target


class PhaseTimer:
    """Wall seconds per phase over its finished calls (the device synchronised at the end of each
    call in the training thread), the start of every call, and the end of each stage's run: a run
    cut short still gives per-epoch figures."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.counts = defaultdict(int)
        self.starts = defaultdict(list)
        self.stage_ends = {}

    @contextmanager
    def phase(self, name):
        t0 = time.perf_counter()
        self.starts[name].append(t0)
        yield
        # The training thread waits for its queued work; an epoch-end thread must not wait for it.
        if torch.cuda.is_available() and threading.current_thread() is threading.main_thread():
            torch.cuda.synchronize()
        self.seconds[name] += time.perf_counter() - t0
        self.counts[name] += 1

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            with self.phase(name):
                return fn(*args, **kwargs)
        return timed


def recipe_epochs(scale):
    """{stage: epochs} of the recipe at `scale` (at least one each)."""
    return {stage: max(1, round(full * scale)) for stage, full in FULL_EPOCHS.items()}


BESIDE_TRAINING = ("evaluation: proposals + mAP", "checkpoints", "logs")
# The project's limit on checkpoint writes: at most this share of the recipe's wall.
CHECKPOINT_SHARE_LIMIT = 0.05


def run_recipe(data_dir, scale, device, run_root, progress=False, overlap=True, timer=None, **settings):
    """Run both stages at `scale` in run_root (overlap: see Trainer.overlap), timing into `timer`;
    settings: Config values beside the recipe's (compile_step, compile_mode, precision, checkpoint_every). Returns
    (PhaseTimer, epochs {stage: n}, best {stage: mAP})."""
    timer = timer or PhaseTimer()
    epochs = recipe_epochs(scale)
    best = {}
    shutil.rmtree(run_root, ignore_errors=True)
    real_save, real_link, real_metrics = loop.save_checkpoint, loop.link_checkpoint, Trainer._write_metrics
    loop.save_checkpoint = timer.wrap("checkpoints", real_save)
    loop.link_checkpoint = timer.wrap("checkpoints", real_link)
    Trainer._write_metrics = timer.wrap("logs", real_metrics)
    try:
        init = None
        for stage in ("baseline", "ftcl"):
            config = preset("thumos14", data_dir=str(data_dir), epochs=epochs["baseline"], ftcl_epochs=epochs["ftcl"],
                            **settings)
            with timer.phase("data"):
                trainer = Trainer(stage, config, run_root / stage, device, progress=progress)
            if init is not None:
                trainer.init_from(init)
            trainer.overlap = overlap
            trainer.train_epoch = timer.wrap(f"training steps ({stage})", trainer.train_epoch)
            trainer.eval_outputs = timer.wrap("evaluation: forward", trainer.eval_outputs)
            trainer.score = timer.wrap("evaluation: proposals + mAP", trainer.score)
            trainer.run()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            timer.stage_ends[stage] = time.perf_counter()
            best[stage] = trainer.best
            init = run_root / stage / "best.pt"
    finally:
        loop.save_checkpoint, loop.link_checkpoint, Trainer._write_metrics = real_save, real_link, real_metrics
    return timer, epochs, best


def epoch_walls(timer):
    """{stage: (epochs, wall seconds of the first, mean wall seconds of the others or None)}, from
    each epoch's start to the next one's, the last ending with the stage's run; a stage cut short
    counts its whole epochs only. The first epoch carries one-time costs (test features read,
    worker processes forked, kernels compiled), so the projection counts it once."""
    walls = {}
    for stage in FULL_EPOCHS:
        marks = list(timer.starts.get(f"training steps ({stage})", []))
        if stage in timer.stage_ends:
            marks.append(timer.stage_ends[stage])
        if len(marks) >= 2:
            count = len(marks) - 1
            rest = (marks[-1] - marks[1]) / (count - 1) if count > 1 else None
            walls[stage] = (count, marks[1] - marks[0], rest)
    return walls


def _projected_wall(stage, first, rest):
    return first + (rest if rest is not None else first) * (FULL_EPOCHS[stage] - 1)


def phase_frame(timer, overlap=True):
    """Per phase: calls, seconds, seconds per call, and the full recipe's share (training steps x
    500 or 25 epochs, evaluation and checkpoints per epoch run x 525, data once). Then each stage's
    epoch wall time (what the epoch ends beside training do not add; per call: an epoch after the
    first) and the total: data plus both stages' epoch walls, projected to the full recipe."""
    rows = []
    # Epoch ends project per epoch run, not per call: a checkpoint phase has several calls an epoch.
    epochs_run = sum(timer.counts.get(f"training steps ({stage})", 0) for stage in FULL_EPOCHS)
    for name, seconds in timer.seconds.items():
        count = timer.counts[name]
        if name.startswith("training steps"):
            full = seconds / count * FULL_EPOCHS[name[name.index("(") + 1:-1]]
        elif name == "data":
            full = seconds
        else:
            full = seconds / max(epochs_run, 1) * sum(FULL_EPOCHS.values())
        where = "beside training" if overlap and name in BESIDE_TRAINING else "in line"
        rows.append({"phase": name, "runs": where, "calls": count, "seconds": seconds, "seconds per call": seconds / count,
                     "full recipe (s)": full})
    walls = epoch_walls(timer)
    for stage, (count, first, rest) in walls.items():
        rows.append({"phase": f"epoch wall ({stage})", "runs": "all of the above", "calls": count,
                     "seconds": first + (rest or 0.0) * (count - 1), "seconds per call": rest if rest is not None else first,
                     "full recipe (s)": _projected_wall(stage, first, rest)})
        if rest is not None:  # what the first epoch took beyond the others: with --compile, mostly compilation
            rows.append({"phase": f"first epoch's one-time costs ({stage}: compilation, first reads)",
                         "runs": "in the first epoch", "calls": 1, "seconds": first - rest, "seconds per call": None,
                         "full recipe (s)": None})
    frame = pd.DataFrame(rows)
    if len(walls) < len(FULL_EPOCHS):
        return frame
    total = {"phase": "total", "runs": None, "calls": None,
             "seconds": timer.seconds["data"] + sum(f + (r or 0.0) * (n - 1) for n, f, r in walls.values()),
             "seconds per call": None,
             "full recipe (s)": timer.seconds["data"] + sum(_projected_wall(stage, f, r)
                                                            for stage, (n, f, r) in walls.items())}
    return pd.concat([frame, pd.DataFrame([total])], ignore_index=True)


TARGET_MINUTES = 20  # the whole recipe on one H100


def add_arguments(parser):
    """The recipe's options (defaults None: `python -m bench recipe` without any runs its benchmark case)."""
    parser.add_argument("--scale", type=_fraction, help="fraction of the 500 + 25 epochs to run (default 1)")
    parser.add_argument("--feature-dim", type=tool.positive_int, help="default: 2048 with a GPU, 256 without")
    parser.add_argument("--device", help="auto (cuda with a GPU, else cpu; the default), cpu or cuda")
    parser.add_argument("--sequential", action="store_true",
                        help="score, save and log each epoch in line, not beside the next epoch's training")
    parser.add_argument("--compile", action="store_true", help="train with --compile (torch.compile'd steps)")
    parser.add_argument("--compile-mode", choices=COMPILE_MODES,
                        help="train with --compile-mode (with --compile; reduce-overhead: CUDA graphs)")
    parser.add_argument("--precision", choices=("float32", "bf16"), help="train with --precision (default float32)")
    parser.add_argument("--checkpoint-every", type=tool.positive_int, help="train with --checkpoint-every N")


def main(argv=None):
    parser = tool.parser("python -m bench recipe", __doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv), parser)


def run(args, parser):
    """Run the recipe as `args` (add_arguments) ask; parser reports a bad --device."""
    args.scale = 1.0 if args.scale is None else args.scale
    try:
        device = resolve_device(args.device or "auto")
    except ValueError as error:
        parser.error(str(error))
    dim = args.feature_dim or (2048 if device.type == "cuda" else 256)
    info = machine()
    with PhaseTimer().phase("build"):
        data_dir = recipe_data(dim)
    timer = PhaseTimer()
    epochs = recipe_epochs(args.scale)
    best, cut = {}, None
    # `timeout` (the GPU check's stage limit) ends a run with SIGTERM: print what it measured.
    signal.signal(signal.SIGTERM, _interrupt)
    error = compile_mode_error(getattr(args, "compile_mode", None), getattr(args, "compile", False))
    if error:
        parser.error(error)
    settings = {key: value for key, value in (("compile_step", getattr(args, "compile", False) or None),
                                              ("compile_mode", getattr(args, "compile_mode", None)),
                                              ("precision", getattr(args, "precision", None)),
                                              ("checkpoint_every", getattr(args, "checkpoint_every", None)))
                if value is not None}
    try:
        _, _, best = run_recipe(data_dir, args.scale, device, RESULTS_DIR / "recipe-runs",
                                overlap=not args.sequential, timer=timer, **settings)
    except KeyboardInterrupt:
        cut = "; CUT SHORT: whole epochs and finished calls only, no total unless both stages ran"
    frame = phase_frame(timer, overlap=not args.sequential)
    print(f"# recipe: {info['device']}, torch {info['torch']}, commit {info['commit']}, {info['date']}; "
          f"{data_dir.name}; {epochs['baseline']} baseline + {epochs['ftcl']} FTCL epochs (scale {args.scale:g}); "
          f"epoch ends {'in line' if args.sequential else 'beside training'}"
          f"{''.join(f'; {key} {value}' for key, value in settings.items())}{cut or ''}\n")
    print(markdown(frame, floatfmt=".1f") if len(frame) else "nothing finished")
    target = target_line(frame) if device.type == "cuda" else None
    if target:
        print("\n" + target)
    share = checkpoint_share_line(frame)
    if share:
        print("\n" + share)
    if best:
        print("\nbest test avg mAP(0.1:0.7): " + ", ".join(f"{stage} {value:.2f}" for stage, value in best.items())
              + " (generated data: a timing run, not a result)")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    frame.assign(**info, scale=args.scale, feature_dim=dim, overlap=not args.sequential).to_csv(
        RESULTS_DIR / "recipe.csv", mode="a", index=False, header=not (RESULTS_DIR / "recipe.csv").exists())
    return 1 if cut else 0


def target_line(frame):
    """The projected full recipe against the target (a GPU run), or None without a total."""
    total = frame.loc[frame["phase"] == "total", "full recipe (s)"] if len(frame) else []
    if not len(total):
        return None
    minutes = float(total.iloc[0]) / 60
    return (f"full recipe projected: {minutes:.1f} min (target on one H100: <= {TARGET_MINUTES} min: "
            f"{'met' if minutes <= TARGET_MINUTES else 'NOT met'})")


def checkpoint_share_line(frame):
    """The checkpoint writes' projected seconds as a share of the projected full recipe's wall (the
    cadence's limit: CHECKPOINT_SHARE_LIMIT), or None without both."""
    rows = frame.set_index("phase")["full recipe (s)"] if len(frame) else {}
    if "checkpoints" not in rows or "total" not in rows:
        return None
    share = float(rows["checkpoints"]) / float(rows["total"])
    return (f"checkpoint writes projected: {float(rows['checkpoints']):.1f} s, {100 * share:.1f} % of the full "
            f"recipe's wall (limit {100 * CHECKPOINT_SHARE_LIMIT:g} %: "
            f"{'met' if share <= CHECKPOINT_SHARE_LIMIT else 'NOT met'}; beside training, so an upper bound of "
            f"what they cost it)")


def _fraction(text):
    """--scale: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _interrupt(signum, frame):
    if os.getpid() != _MAIN_PID:  # a forked evaluation worker: end as SIGTERM's default would
        os._exit(128 + signum)
    raise KeyboardInterrupt


_MAIN_PID = os.getpid()


if __name__ == "__main__":
    sys.exit(main())
