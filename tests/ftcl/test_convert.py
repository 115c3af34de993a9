"""python -m ftcl.convert wtalc: W-TALC directories (built here) to this project's layout."""
import io
import json
import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest

from ftcl import convert
from ftcl.data import load_dataset
import shutil

from tests.helpers import WTALC_VARIABLE, thumos14_annotations, wtalc_annotations


def _object_array(items):
    out = np.empty(len(items), dtype=object)
    for k, item in enumerate(items):
        out[k] = item
    return out


def _source_videos(rng):
    """(name, subset, duration, [(label, start, end)]) of the videos to write: THUMOS14's real test
    and validation annotations when FTCL_THUMOS14_ANNOTATIONS names them (a slice), else generated ones."""
    annotations = thumos14_annotations()
    if annotations is not None:
        database = json.loads((annotations / "gt.json").read_text())["database"]
        picked = [vid for vid in database if database[vid]["annotations"]]
        picked = ([v for v in picked if database[v]["subset"] == "validation"][:10]
                  + [v for v in picked if database[v]["subset"] == "test"][:10])
        return [(vid, database[vid]["subset"], database[vid]["duration"],
                 [(a["label"], *a["segment"]) for a in database[vid]["annotations"]]) for vid in picked]
    videos = []
    for k in range(16):
        duration = float(rng.uniform(30, 90))
        starts = np.sort(rng.uniform(0, duration - 5, 3))
        anns = [(f"Class{rng.integers(4)}", float(s), float(s + rng.uniform(1, 4))) for s in starts]
        videos.append((f"video_{k:03d}", "validation" if k < 10 else "test", duration, anns))
    return videos


def write_wtalc(root, videos, name="Thumos14reduced", rng=None, bytes_names=True, flat_durations=False):
    """A W-TALC directory (features of 0.64 s snippets, 16-d) for the given videos, laid out as
    W-TALC's own files are: byte strings, durations [N, 1] (flat_durations: [N]), the frame-rate
    files and Ambiguous_test.txt beside them."""
    rng = rng or np.random.default_rng(0)
    ann = root / f"{name}-Annotations"
    ann.mkdir(parents=True)
    classes = sorted({label for v in videos for label, _, _ in v[3]})
    encode = (lambda s: s.encode()) if bytes_names else (lambda s: s)
    features = _object_array([rng.random((max(2, int(v[2] / 0.64)), 16), dtype=np.float32) for v in videos])
    arrays = {
        "videoname": np.array([encode(v[0]) for v in videos]),
        "classlist": np.array([encode(c) for c in classes]),
        "subset": np.array([encode(v[1]) for v in videos]),
        "segments": _object_array([[[s, e] for _, s, e in v[3]] for v in videos]),
        "labels": _object_array([[label for label, _, _ in v[3]] for v in videos]),
        "labels_all": _object_array([sorted({label for label, _, _ in v[3]}) for v in videos]),
        "duration": np.array([v[2] for v in videos]) if flat_durations else np.array([[v[2]] for v in videos]),
        "extracted_fps": np.full(len(videos), 10, dtype=np.int64),
        "original_fps": np.full(len(videos), 30.0),
    }
    for key, array in arrays.items():
        np.save(ann / f"{key}.npy", array, allow_pickle=True)
    np.save(root / f"{name}-I3D-JOINTFeatures.npy", features, allow_pickle=True)
    (ann / "Ambiguous_test.txt").write_text("")
    return features


@pytest.fixture
def source(tmp_path):
    videos = _source_videos(np.random.default_rng(0))
    features = write_wtalc(tmp_path / "src", videos)
    return tmp_path / "src", videos, features


def _evil_pickle(path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > /dev/null",))

    with path.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": (1,)})
        pickle.dump([Evil()], f)


def _mutate(name, array_fn=None):
    def mutate(src):
        path = src / "Thumos14reduced-Annotations" / f"{name}.npy"
        array = np.load(path, allow_pickle=True)
        np.save(path, array_fn(array), allow_pickle=True)
    return mutate


def _mutate_features(change, video=0):
    """Replace video `video`'s features by change(features) (or change them in place when it returns None)."""
    def mutate(src):
        path = src / "Thumos14reduced-I3D-JOINTFeatures.npy"
        features = np.load(path, allow_pickle=True)
        changed = change(features[video])
        if changed is not None:
            features[video] = changed
        np.save(path, features, allow_pickle=True)
    return mutate


BREAKAGES = [
    (lambda src: (src / "Thumos14reduced-Annotations" / "segments.npy").unlink(), "segments.npy: file not found"),
    (_mutate("duration", lambda a: a[:-1]), "duration.npy: "),
    (_mutate("subset", lambda a: np.array([b"holdout"] + list(a[1:]))), "has subset 'holdout'"),
    (_mutate("segments", lambda a: _object_array([[[-1.0, 2.0]] * len(a[0])] + list(a[1:]))), "is not a segment"),
    (_mutate("segments", lambda a: _object_array([[[5.0, 2.0]] * len(a[0])] + list(a[1:]))), "is not a segment"),
    (_mutate("segments", lambda a: _object_array([[[float("nan"), 2.0]] * len(a[0])] + list(a[1:]))),
     "is not a segment"),
    (lambda src: [_mutate(key, lambda a: _object_array([[]] + list(a[1:])))(src) for key in ("segments", "labels")],
     "has no annotations"),
    (_mutate("duration", lambda a: np.array([[float("nan")]] + list(a[1:]))), "duration nan is not a finite number"),
    (_mutate("duration", lambda a: np.array([[-3.0]] + list(a[1:]))), "duration -3.0 is not a finite number"),
    (_mutate("duration", lambda a: np.array([[float("inf")]] + list(a[1:]))), "duration inf is not a finite number"),
    (_mutate_features(lambda f: f.__setitem__((1, 0), float("nan"))), "row 1 holds a non-finite value"),
    (_mutate_features(lambda f: f.__setitem__((-1, 0), float("inf"))), "holds a non-finite value"),
    (_mutate_features(lambda f: f.astype(np.complex64)), "complex features"),
    (_mutate_features(lambda f: f[:, :3], video=4), "3-d features, but video"),
    (_mutate("labels", lambda a: _object_array([["NoSuchClass"] * len(a[0])] + list(a[1:]))),
     "label 'NoSuchClass' is not in classlist.npy"),
    (lambda src: _evil_pickle(src / "Thumos14reduced-Annotations" / "labels.npy"), "refused global"),
]


def test_round_trip_keeps_annotations_and_features(source, tmp_path):
    src, videos, features = source
    assert convert.main(["wtalc", str(src), str(tmp_path / "dst")]) == 0
    dst = tmp_path / "dst"
    database = json.loads((dst / "gt.json").read_text())["database"]
    for k, (vid, subset, duration, anns) in enumerate(videos):
        entry = database[vid]
        assert entry["subset"] == subset and entry["duration"] == pytest.approx(duration)
        assert [(a["label"], *a["segment"]) for a in entry["annotations"]] == [(label, float(s), float(e))
                                                                                for label, s, e in anns]
        split = "train" if subset == "validation" else "test"
        assert vid in (dst / f"split_{split}.txt").read_text().split()
        buffer = io.BytesIO()
        np.save(buffer, features[k])
        assert (dst / split / f"{vid}.npy").read_bytes() == buffer.getvalue()
    dataset = load_dataset(dst)
    assert dataset.feature_dim == 16 and len(dataset.train) + len(dataset.test) == len(videos)


def test_flat_durations_convert_too(tmp_path):
    """Durations [N] (as some copies of the files have them) convert as [N, 1] do."""
    videos = _source_videos(np.random.default_rng(1))[:12]
    for flat in (False, True):
        write_wtalc(tmp_path / f"src{flat}", videos, flat_durations=flat)
        assert convert.main(["wtalc", str(tmp_path / f"src{flat}"), str(tmp_path / f"dst{flat}")]) == 0
    assert (tmp_path / "dstFalse" / "gt.json").read_text() == (tmp_path / "dstTrue" / "gt.json").read_text()


def test_wtalc_own_annotation_files_convert_whole(tmp_path, capsys):
    """W-TALC's own Thumos14reduced annotation files (FTCL_WTALC_ANNOTATIONS), with features made here
    for each of their videos: all 412 convert, 200 train and 212 test."""
    annotations = wtalc_annotations()
    if annotations is None:
        pytest.skip(f"{WTALC_VARIABLE} names no W-TALC annotation directory")
    src = tmp_path / "src"
    shutil.copytree(annotations, src / "Thumos14reduced-Annotations")
    names = np.load(annotations / "videoname.npy")
    rng = np.random.default_rng(0)
    features = _object_array([rng.random((int(rng.integers(2, 6)), 8), dtype=np.float32) for _ in names])
    np.save(src / "Thumos14reduced-I3D-JOINTFeatures.npy", features, allow_pickle=True)
    assert convert.main(["wtalc", str(src), str(tmp_path / "dst")]) == 0, capsys.readouterr().err
    assert "412" not in capsys.readouterr().err
    dataset = load_dataset(tmp_path / "dst")
    assert (len(dataset.train), len(dataset.test)) == (200, 212)
    database = json.loads((tmp_path / "dst" / "gt.json").read_text())["database"]
    durations = np.load(annotations / "duration.npy")
    assert [database[name.decode()]["duration"] for name in names] == durations.reshape(-1).tolist()


def test_activitynet12_subsets(tmp_path):
    videos = [(f"v_{k}", "training" if k < 3 else "validation", 50.0, [("Archery", 1.0, 20.0)]) for k in range(5)]
    write_wtalc(tmp_path / "src", videos, name="ActivityNet1.2", bytes_names=False)
    assert convert.main(["wtalc", str(tmp_path / "src"), str(tmp_path / "dst"), "--name", "ActivityNet1.2"]) == 0
    assert (tmp_path / "dst" / "split_train.txt").read_text().split() == ["v_0", "v_1", "v_2"]
    assert (tmp_path / "dst" / "split_test.txt").read_text().split() == ["v_3", "v_4"]


@pytest.mark.parametrize("breakage,message", BREAKAGES)
def test_bad_sources_are_one_line_errors_and_leave_nothing(source, tmp_path, capsys, breakage, message):
    """Whatever the loader would refuse, the converter refuses first (one line naming the file and
    the video), before anything is written."""
    src, videos, _ = source
    breakage(src)
    assert convert.main(["wtalc", str(src), str(tmp_path / "dst")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and message in err, err
    assert not (tmp_path / "dst").exists() and not list(tmp_path.glob(".dst.*"))


def test_destination_must_be_new(source, tmp_path, capsys):
    src, _, _ = source
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "keep.txt").write_text("x")
    assert convert.main(["wtalc", str(src), str(tmp_path / "dst")]) == 2
    assert "not an empty directory" in capsys.readouterr().err
    assert (tmp_path / "dst" / "keep.txt").read_text() == "x"


@pytest.mark.parametrize("name,problem", [
    ("", "is empty"), ("..", "is a directory name"), ("../../escaped", "holds a path separator"),
    ("/tmp/absolute", "holds a path separator"), ("a\\b", "holds a path separator"),
    ("two\nlines", "holds a line break"), (" padded", "starts or ends with a space"),
    ("padded ", "starts or ends with a space"),
])
def test_video_names_that_would_escape_or_break_files_are_refused(tmp_path, capsys, name, problem):
    """Names are data: one that is not a plain file name is refused, naming it, before anything is
    written, inside DST or outside it."""
    videos = _source_videos(np.random.default_rng(0))
    videos[1] = (name, *videos[1][1:])
    write_wtalc(tmp_path / "src", videos)
    before = sorted(p for p in tmp_path.rglob("*"))
    assert convert.main(["wtalc", str(tmp_path / "src"), str(tmp_path / "dst")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "videoname.npy" in err and repr(name) in err and problem in err, err
    assert sorted(p for p in tmp_path.rglob("*")) == before and not (tmp_path / "dst").exists()


def test_annotations_past_the_duration_are_kept_with_a_note(source, tmp_path, capsys):
    """THUMOS14's own gt.json holds annotations that end past the stated duration; the loader and the
    evaluator take them, so the converter keeps them as they are and says how many."""
    src, videos, _ = source
    _mutate("segments", lambda a: _object_array([[[1.0, 1e6]] + list(a[0][1:])] + list(a[1:])))(src)
    _mutate("segments", lambda a: _object_array(list(a[:2]) + [[[2.0, 5e5]] + list(a[2][1:])] + list(a[3:])))(src)
    assert convert.main(["wtalc", str(src), str(tmp_path / "dst")]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("note: 2 annotations end past the video's stated duration"), err
    assert f"e.g. {videos[0][0]}: [1, 1e+06] s of" in err
    database = json.loads((tmp_path / "dst" / "gt.json").read_text())["database"]
    assert database[videos[0][0]]["annotations"][0]["segment"] == [1.0, 1e6]
    assert database[videos[2][0]]["annotations"][0]["segment"] == [2.0, 5e5]
    load_dataset(tmp_path / "dst")


@pytest.mark.parametrize("seed", range(6))
def test_what_the_converter_accepts_the_loader_accepts(tmp_path, capsys, seed):
    """Random damage to a source (values, lengths, dimensions): either the converter refuses it, or
    the data set it writes loads."""
    rng = np.random.default_rng(seed)
    videos = _source_videos(rng)
    src = tmp_path / "src"
    write_wtalc(src, videos, rng=rng)
    for _ in range(2):
        video = int(rng.integers(len(videos)))
        kind = rng.integers(4)
        bad = float(rng.choice([np.nan, np.inf, -np.inf, -1.0, 0.0, 1e9]))
        if kind == 0:
            _mutate("duration", lambda a: np.array([[bad] if k == video else x for k, x in enumerate(a)]))(src)
        elif kind == 1:
            _mutate("segments", lambda a: _object_array([[[bad, x[0][1]]] + list(x[1:]) if k == video and len(x) else x
                                                         for k, x in enumerate(a)]))(src)
        elif kind == 2:
            _mutate_features(lambda f: f.__setitem__((int(rng.integers(len(f))), 0), bad), video=video)(src)
        else:
            _mutate_features(lambda f: f[:, :int(rng.integers(1, 17))], video=video)(src)
    code = convert.main(["wtalc", str(src), str(tmp_path / "dst")])
    err = capsys.readouterr().err
    if code == 0:
        load_dataset(tmp_path / "dst")
    else:
        assert code == 2 and err.count("\n") == 1 and not (tmp_path / "dst").exists(), err


def test_the_real_thumos14_annotations_convert_whole(tmp_path, capsys):
    """Every annotation of THUMOS14's real gt.json survives conversion as it is, those past their
    video's duration included (counted here from the file itself)."""
    annotations = thumos14_annotations()
    if annotations is None:
        pytest.skip("FTCL_THUMOS14_ANNOTATIONS names no THUMOS14 annotation directory")
    database = json.loads((annotations / "gt.json").read_text())["database"]
    videos = [(vid, info["subset"], info["duration"], [(a["label"], *a["segment"]) for a in info["annotations"]])
              for vid, info in database.items() if info["annotations"] or info["subset"] == "test"]
    past = sum(float(a["segment"][1]) > float(info["duration"]) for vid, info in database.items()
               for a in info["annotations"] if vid in {v[0] for v in videos})
    write_wtalc(tmp_path / "src", videos)
    assert convert.main(["wtalc", str(tmp_path / "src"), str(tmp_path / "dst")]) == 0
    err = capsys.readouterr().err
    assert past > 0 and err.startswith(f"note: {past} annotations end past the video's stated duration"), err
    written = json.loads((tmp_path / "dst" / "gt.json").read_text())["database"]
    for vid, _, _, anns in videos:
        assert [(a["label"], *a["segment"]) for a in written[vid]["annotations"]] == [
            (label, float(s), float(e)) for label, s, e in anns]
    load_dataset(tmp_path / "dst")


@pytest.mark.parametrize("writer", ["convert", "synthetic"])
def test_a_full_disk_names_the_file_being_written(source, tmp_path, capsys, monkeypatch, writer):
    """A write error of a full disk names no file; the tools name the one the user would look for
    (in DST, not the temporary directory), and leave nothing behind."""
    import errno
    from ftcl import synthetic
    real_save, saved = np.save, []

    def save(path, array, *args, **kwargs):
        if len(saved) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        saved.append(path)
        return real_save(path, array, *args, **kwargs)

    monkeypatch.setattr(np, "save", save)
    dst = tmp_path / "dst"
    if writer == "convert":
        argv_main = convert.main, ["wtalc", str(source[0]), str(dst)]
    else:
        argv_main = synthetic.main, ["--out", str(dst), "--train-videos", "4", "--test-videos", "2", "--feature-dim", "4"]
    main, argv = argv_main
    assert main(argv) == 2
    err = capsys.readouterr().err
    split = Path(saved[0]).parent.name  # the third file goes where the first two went
    assert err.count("\n") == 1 and err.startswith(f"error: {dst / split}/") and err.rstrip().endswith(
        ".npy: No space left on device"), err
    assert ".partial." not in err and not dst.exists() and not list(tmp_path.glob(".dst*"))


def test_a_killed_conversion_leaves_nothing_the_next_one_keeps(source, tmp_path):
    """What a SIGKILLed writer left beside DST (its hidden partial directory) goes with the next
    write of DST; one of a writer still running stays."""
    import subprocess
    import sys
    dst = tmp_path / "dst"
    killed = ("import os, sys\nfrom ftcl.tool import atomic_directory\n"
              f"with atomic_directory({str(dst)!r}) as tmp:\n    (tmp / 'half.npy').write_bytes(b'x')\n    os._exit(9)\n")
    assert subprocess.run([sys.executable, "-c", killed]).returncode == 9
    stale = list(tmp_path.glob(".dst.partial.*"))
    assert len(stale) == 1 and (stale[0] / "half.npy").is_file()
    running = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        alive = tmp_path / f".dst.partial.{socket.gethostname()}.{running.pid}.abc123"
        alive.mkdir()
        assert convert.main(["wtalc", str(source[0]), str(dst)]) == 0
        assert not stale[0].exists() and alive.is_dir() and (dst / "gt.json").is_file()
    finally:
        running.communicate(b"")
