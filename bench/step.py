"""Benchmark of one training step: FTCL (16 pairs) against ACM-Net on the same 32 videos.

Forward, backward and optimizer step, at the release's sizes on a GPU (750 snippets x 2048-d).
Without a GPU the same comparison runs at the synthetic set's 256-d so it finishes in seconds."""
import torch

from bench.common import RESULTS_DIR, append_csv, fmt, machine, print_table, time_cpu, time_gpu
from ftcl import losses
from ftcl.config import preset
from ftcl.model import ACMNet


def _steps(device, feature_dim, pairs=16, snippets=750, num_classes=20):
    config = preset("thumos14", feature_dim=feature_dim, num_classes=num_classes)
    torch.manual_seed(0)
    model = ACMNet.from_config(config).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.relu(torch.randn(2 * pairs, snippets, feature_dim, generator=gen, device=device))
    classes = torch.randint(0, num_classes, (2 * pairs,), generator=gen, device=device)
    classes[pairs:pairs + pairs // 2] = classes[:pairs // 2]  # half of the pairs positive
    labels = torch.nn.functional.one_hot(classes, num_classes).float()

    def acm_step():
        out = model(x)
        loss, _ = losses.acm_loss(out, labels, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def ftcl_step():
        out = model(x)
        a, b = out.select(slice(0, pairs)), out.select(slice(pairs, None))
        loss, _ = losses.ftcl_loss(a, b, labels[:pairs], labels[pairs:], config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return acm_step, ftcl_step


def main(csv_dir=RESULTS_DIR):
    info = machine()
    on_gpu = torch.cuda.is_available()
    device, dim = ("cuda", 2048) if on_gpu else ("cpu", 256)
    print(f"# training-step benchmark: {info['device']}, torch {info['torch']}, commit {info['commit']}, "
          f"{info['date']}; 32 videos x 750 snippets x {dim}-d" + ("" if on_gpu else " (CPU: GPU sizes skipped)"))
    acm_step, ftcl_step = _steps(device, dim)
    timer = time_gpu if on_gpu else (lambda fn: time_cpu(fn, repeats=5))
    acm_ms, ftcl_ms = timer(acm_step), timer(ftcl_step)
    rows = [{"step": "ACM-Net (32 videos)", "ms": acm_ms, "ratio": 1.0},
            {"step": "FTCL (16 pairs: ACM-Net + FSD + LCS)", "ms": ftcl_ms, "ratio": ftcl_ms / acm_ms}]
    print_table([{k: fmt(v) for k, v in r.items()} for r in rows], ["step", "ms", "ratio"])
    append_csv(csv_dir / "step.csv", [{**info, "feature_dim": dim, **r} for r in rows])
