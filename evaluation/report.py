"""Printing evaluation results (kept apart from computing them)."""


def detection_table(result, per_class=False):
    """A Markdown table: one column per tIoU and per average, mAP in percent; optionally per class."""
    averages = result.averages()
    header = ["tIoU"] + [f"{t:.2f}" for t in result.tiou] + [f"avg {k}" for k in averages]
    rows = [["mAP"] + [f"{100 * x:.2f}" for x in result.mAP] + [f"{100 * x:.2f}" for x in averages.values()]]
    if per_class:
        for c, name in enumerate(result.classes):
            ap = result.ap[:, c]
            cells = [f"{100 * x:.2f}" for x in ap]
            cells += [f"{100 * result.ap[_inside(result.tiou, k), c].mean():.2f}" for k in averages]
            rows.append([name] + cells)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join(lines)


def _inside(tiou, key):
    low, high = (float(x) for x in key.split(":"))
    return (tiou >= low - 1e-9) & (tiou <= high + 1e-9)
