"""Tables of evaluation results, as pandas DataFrames and Markdown (kept apart from computing them)."""
from ftcl.tool import markdown


def detection_frame(result, per_class=False):
    """mAP in percent: one column per tIoU and per average; a first row "mAP", then one row per
    class when per_class. result: evaluation.DetectionResult."""
    import pandas as pd  # imported on first use: a tool's --help need not wait for it

    windows = result.average_windows()
    columns = [f"{t:.2f}" for t in result.tiou] + [f"avg {k}" for k in windows]
    rows = {"mAP": list(100 * result.mAP) + [100 * result.mAP[mask].mean() for mask in windows.values()]}
    if per_class:
        for c, name in enumerate(result.classes):
            ap = result.ap[:, c]
            rows[name] = list(100 * ap) + [100 * ap[mask].mean() for mask in windows.values()]
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    frame.index.name = "tIoU"
    return frame.reset_index()


def detection_table(result, per_class=False):
    """detection_frame() as Markdown."""
    return markdown(detection_frame(result, per_class))
