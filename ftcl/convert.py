"""python -m ftcl.convert wtalc SRC_DIR DST_DIR [--name Thumos14reduced]

Converts W-TALC-format features (what CO2-Net, DELU, ASM-Loc and most WSAL code since 2018 read) to
this project's layout, so every command works on them unchanged:

    SRC_DIR/<Name>-I3D-JOINTFeatures.npy    object array: one [T, 2048] array per video
    SRC_DIR/<Name>-Annotations/             videoname.npy, classlist.npy, subset.npy, segments.npy,
                                            labels.npy, duration.npy (labels_all.npy, fps files and
                                            Ambiguous_test.txt are not needed)
 -> DST_DIR/gt.json, split_train.txt, split_test.txt, train/<vid>.npy, test/<vid>.npy

Thumos14reduced: subset "validation" is the train split, "test" the test split; ActivityNet1.2:
"training" and "validation". The object arrays are pickles: they are read with a restricted
unpickler that admits numpy arrays, dtypes and strings only. DST_DIR is built beside itself and
renamed into place; bad input is one line naming the file and the video, and nothing is left behind.
Everything is checked as the loader will check it before anything is written. Annotations that end
past their video's stated duration (THUMOS14's own gt.json has 92) are kept, with one note line.
"""
import io
import json
import pickle
import sys
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from ftcl import tool
from ftcl.data import DataError, check_feature_array
from ftcl.evaluation.io import EvaluationInputError, parse_database
from ftcl.tool import atomic_directory, reported_as

SUBSETS = {"Thumos14reduced": ("validation", "test"), "ActivityNet1.2": ("training", "validation")}
ANNOTATION_FILES = ("videoname", "classlist", "subset", "segments", "labels", "duration")


class ConvertError(ValueError):
    """Input the converter refuses; the message is one line naming the file (and video)."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays of numbers, strings and nested lists / arrays, and nothing else: any
    other global (a function, a class) raises, so a crafted file cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return super().find_class(module, name)


def load_npy(path):
    """A .npy file; object arrays through the restricted unpickler. Any problem is a ConvertError."""
    path = Path(path)
    if not path.is_file():
        raise ConvertError(f"{path}: file not found")
    try:
        with path.open("rb") as f:
            version = npy_format.read_magic(f)
            header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, fortran, dtype = header(f)
            if not dtype.hasobject:
                return np.load(path, allow_pickle=False)
            array = _NumpyOnlyUnpickler(io.BufferedReader(f), encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise ConvertError(f"{path}: not loaded ({err}); only numpy arrays, dtypes and strings are admitted") from None
    except (ValueError, OSError, EOFError, TypeError, AttributeError, ImportError, IndexError, KeyError) as err:
        raise ConvertError(f"{path}: not a readable .npy file ({err.__class__.__name__})") from None
    if not isinstance(array, np.ndarray):
        raise ConvertError(f"{path}: holds a {type(array).__name__}, not a numpy array")
    return array


def _number(value):
    """value as a finite float, or None (NaN, infinite, not a number)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _check_video_name(vid, where):
    """A video name becomes a file name (<split>/<name>.npy) and a line of a split file: refuse one
    that is empty, '.' or '..', or holds a path separator, a line break or leading / trailing space."""
    problems = ((not vid, "is empty"), (vid in (".", ".."), "is a directory name"),
                ("/" in vid or "\\" in vid, "holds a path separator"),
                ("\n" in vid or "\r" in vid, "holds a line break"),
                (vid != vid.strip(), "starts or ends with a space"))
    for found, problem in problems:
        if found:
            raise ConvertError(f"{where}: video name {vid!r} {problem}; names become file names")


def _read_source(src, name):
    """Features and annotation arrays of a W-TALC directory, checked for matching lengths."""
    src = Path(src)
    if not src.is_dir():
        raise ConvertError(f"{src}: source directory not found")
    ann_dir = src / f"{name}-Annotations"
    features_path = src / f"{name}-I3D-JOINTFeatures.npy"
    arrays = {key: load_npy(ann_dir / f"{key}.npy") for key in ANNOTATION_FILES}
    features = load_npy(features_path)
    count = len(arrays["videoname"])
    for key, array in [*arrays.items(), ("features", features)]:
        if key != "classlist" and len(array) != count:
            where = features_path if key == "features" else ann_dir / f"{key}.npy"
            raise ConvertError(f"{where}: {len(array)} entries, but videoname.npy names {count} videos")
    return arrays, features, ann_dir, features_path


def convert_wtalc(src, dst, name="Thumos14reduced"):
    """Write DST in this project's layout from a W-TALC directory, after checking all of it as the
    loader will. Returns a summary dict (counts, feature_dim, past_duration: the annotations that end
    past their video's stated duration, kept as they are)."""
    if name not in SUBSETS:
        raise ConvertError(f"--name {name!r}: unknown; choose {' or '.join(SUBSETS)}")
    dst = Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise ConvertError(f"{dst}: exists and is not an empty directory; choose another DST_DIR")
    arrays, features, ann_dir, features_path = _read_source(src, name)
    train_subset, test_subset = SUBSETS[name]
    classes = [_text(c) for c in arrays["classlist"]]
    database, splits = {}, {"train": [], "test": []}
    entries, past_duration = [], []
    for k, raw_vid in enumerate(arrays["videoname"]):
        vid = _text(raw_vid)
        _check_video_name(vid, ann_dir / "videoname.npy")
        subset = _text(arrays["subset"][k])
        if subset not in (train_subset, test_subset):
            raise ConvertError(f"{ann_dir / 'subset.npy'}: video {vid} has subset {subset!r}; {name} has "
                               f"{train_subset!r} and {test_subset!r}")
        feats = features[k]
        if not isinstance(feats, np.ndarray):
            raise ConvertError(f"{features_path}: video {vid}: features must be a [T, D] array, got "
                               f"{type(feats).__name__}")
        # The loader's own checks (real numbers, [T, D], every value finite), before anything is written.
        shape = check_feature_array(feats, features_path, f"video {vid}")
        if entries and shape[1] != entries[0][2].shape[1]:
            raise ConvertError(f"{features_path}: video {vid}: {shape[1]}-d features, but video {entries[0][1]} "
                               f"has {entries[0][2].shape[1]}-d; one data set has one feature dimension")
        raw = arrays["duration"][k]
        if isinstance(raw, np.ndarray) and raw.size == 1:  # W-TALC's own duration.npy is [N, 1]
            raw = raw.reshape(())[()]
        duration = _number(raw)
        if duration is None or duration < 0:
            shown = raw.item() if isinstance(raw, np.generic) else raw
            raise ConvertError(f"{ann_dir / 'duration.npy'}: video {vid}: duration {shown!r} is not a finite "
                               f"number >= 0")
        segments, labels = list(arrays["segments"][k]), list(arrays["labels"][k])
        if len(segments) != len(labels):
            raise ConvertError(f"{ann_dir / 'segments.npy'}: video {vid}: {len(segments)} segments but "
                               f"{len(labels)} labels in labels.npy")
        annotations = []
        for segment, label in zip(segments, labels):
            label = _text(label)
            if label not in classes:
                raise ConvertError(f"{ann_dir / 'labels.npy'}: video {vid}: label {label!r} is not in classlist.npy")
            try:
                start, end = (_number(x) for x in segment)
            except (TypeError, ValueError):
                raise ConvertError(f"{ann_dir / 'segments.npy'}: video {vid}: segment {segment!r} is not "
                                   f"[start, end]") from None
            if start is None or end is None or not 0 <= start <= end:
                raise ConvertError(f"{ann_dir / 'segments.npy'}: video {vid}: segment {list(segment)!r} is not a "
                                   f"segment (two finite numbers, 0 <= start <= end)")
            if end > duration:
                # Kept as the source has it (THUMOS14's own gt.json has 92 such): the loader and the
                # evaluator take segments past the stated duration.
                past_duration.append(f"{vid}: [{start:g}, {end:g}] s of {duration:g} s")
            annotations.append({"segment": [start, end], "label": label})
        split = "train" if subset == train_subset else "test"
        if split == "train" and not annotations:
            raise ConvertError(f"{ann_dir / 'segments.npy'}: training video {vid} has no annotations; weak labels "
                               f"need at least one class per training video")
        database[vid] = {"subset": subset, "duration": duration, "annotations": annotations}
        splits[split].append(vid)
        entries.append((split, vid, feats))
    if len(database) != len(entries):
        raise ConvertError(f"{ann_dir / 'videoname.npy'}: a video name appears twice")
    if not splits["train"] or not splits["test"]:
        raise ConvertError(f"{ann_dir / 'subset.npy'}: no {'train' if not splits['train'] else 'test'} videos")
    gt = {"version": f"converted from W-TALC {name}", "database": database}
    parse_database(gt, dst / "gt.json")  # what every reader of gt.json checks
    with atomic_directory(dst, make_room=lambda path: path.rmdir()) as tmp:
        for split in splits:
            (tmp / split).mkdir()
            with reported_as(dst / f"split_{split}.txt"):
                (tmp / f"split_{split}.txt").write_text("\n".join(splits[split]) + "\n")
        for split, vid, feats in entries:
            with reported_as(dst / split / f"{vid}.npy"):
                np.save(tmp / split / f"{vid}.npy", feats)
        with reported_as(dst / "gt.json"):
            (tmp / "gt.json").write_text(json.dumps(gt))
    return {"videos": len(entries), "train": len(splits["train"]), "test": len(splits["test"]),
            "classes": len({a["label"] for v in database.values() for a in v["annotations"]}),
            "feature_dim": int(entries[0][2].shape[1]), "past_duration": past_duration}


def main(argv=None):
    parser = tool.parser("python -m ftcl.convert", __doc__)
    sub = parser.add_subparsers(dest="format", required=True)
    wtalc = sub.add_parser("wtalc", help="W-TALC features and annotations (Thumos14reduced, ActivityNet1.2)")
    wtalc.add_argument("src", help="directory holding <Name>-I3D-JOINTFeatures.npy and <Name>-Annotations/")
    wtalc.add_argument("dst", help="new directory to write (this project's layout)")
    wtalc.add_argument("--name", default="Thumos14reduced", choices=sorted(SUBSETS))
    args = parser.parse_args(argv)
    try:
        summary = convert_wtalc(args.src, args.dst, args.name)
    except (ConvertError, DataError, EvaluationInputError, OSError) as err:
        print(tool.error_line(err), file=sys.stderr)
        return 2
    if summary["past_duration"]:
        past = summary["past_duration"]
        print(f"note: {len(past)} annotation{'s' if len(past) > 1 else ''} end past the video's stated duration "
              f"(e.g. {past[0]}); kept as the source has them", file=sys.stderr)
    preset = "thumos14" if args.name == "Thumos14reduced" else "activitynet12"
    print(f"wrote {args.dst}: {summary['train']} train and {summary['test']} test videos, {summary['classes']} classes, "
          f"{summary['feature_dim']}-d features; train with --data-dir {args.dst} --preset {preset}")
    return 0


run = tool.script(main)  # the console script


if __name__ == "__main__":
    run()
