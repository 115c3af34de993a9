"""The benchmark report's GPU tables, built from a pytest-benchmark JSON such as a GPU run writes
(a GPU run prints them at its end: they must not first fail there)."""
import json

import pandas as pd
import pytest

from bench import report


def _case(name, param, median_ms, **extra):
    return {"fullname": f"bench/bench_kernels.py::{name}[{param}]", "name": f"{name}[{param}]", "param": param,
            "stats": {"median": median_ms / 1e3, "mean": median_ms / 1e3, "rounds": 5}, "extra_info": extra}


@pytest.fixture
def gpu_json(tmp_path):
    cases = [
        _case("test_release_workload", "ours", 0.9, device="cuda", backend="triton", gpu_ms=0.2, gpu_kernels=91),
        _case("test_release_workload", "ours-cuda-graph", 0.3, device="cuda", backend="triton", gpu_ms=0.05),
        _case("test_release_workload", "release-loops", 2600.0, device="cuda", backend="triton"),
        _case("test_triton_grid", "fsd-fwd+bwd-B16-L32", 0.3, op="fsd", mode="fwd+bwd", B=16, L=32, gpu_ms=0.05,
              gcell_s=0.33, peak_mib=1.0, vs_cuda_ref=1.10 / 0.05, family="rows", host_ms=0.04, chunks_ms=0.5),
        _case("test_triton_grid", "lcs-fwd-B16-L32", 0.2, op="lcs", mode="fwd", B=16, L=32, gpu_ms=0.04, gcell_s=0.4,
              peak_mib=1.0, vs_cuda_ref=None, family="rows", host_ms=0.01),
        _case("test_torch_backend_gpu", "fsd-fwd+bwd-B16-L32", 9.0, op="fsd", mode="fwd+bwd", B=16, L=32, torch_ms=8.0),
        _case("test_torch_backend_gpu", "lcs-fwd-B16-L32", 3000.0, op="lcs", mode="fwd", B=16, L=32, torch_ms=None),
        _case("test_triton_diagonal_major_inputs", "fsd-B64-L2048", 3.0, op="fsd", B=64, L=2048, row_major_ms=4.0,
              diagonal_major_ms=2.0, speedup=2.0),
        _case("test_triton_skewed_tables", "fsd-B256-L512", 3.0, op="fsd", mode="fwd+bwd", B=256, L=512,
              row_major_ms=5.0, skewed_ms=2.5, speedup=2.0, peak_mib=900.0, copy_ms=0.4, torch_copy_ms=1.1),
        _case("test_rows_prefetch_depth", "fsd-B256-L512", 3.0, op="fsd", mode="fwd+bwd", B=256, L=512,
              prefetch_1_ms=5.0, prefetch_2_ms=4.0, prefetch_4_ms=2.0, best_prefetch=4, best_speedup=2.5),
        _case("test_row_bands", "fsd-B64-L2048", 4.0, op="fsd", mode="fwd+bwd", B=64, L=2048, bands_1_ms=10.0,
              bands_2_ms=6.0, bands_4_ms=4.0, bands_8_ms=5.0, bands_auto_ms=4.0, publish_4_ms=4.5,
              publish_16_ms=4.0, publish_64_ms=4.2, auto_bands=4, best_bands=4, one_band_gcell_s=26.8,
              best_gcell_s=67.1, best_speedup=2.5),
        _case("test_host_profile", "fsd", 0.6, op="fsd", B=16, L=32, host_ms=0.5,
              top_own_us_per_call={"run_backward (~:0)": 210.0, "fsd_fwd (triton_dp.py:600)": 12.5}),
        _case("test_launch_config", "fsd-B256-L512", 1.0, op="fsd", B=256, L=512, default_block=512, default_warps=8,
              default_ms=1.2, best_block=256, best_warps=4, best_ms=1.0, best_speedup=1.2,
              configs=[{"block": 256, "num_warps": 4, "ms": 1.0, "vs_default": 1.2}]),
        _case("test_training_step", "acm-32-videos", 11.0, step="acm-32-videos", device="cuda", feature_dim=2048,
              gpu_ms=10.0, gpu_kernels=210),
        _case("test_training_step", "ftcl-16-pairs", 12.0, step="ftcl-16-pairs", device="cuda", feature_dim=2048,
              gpu_ms=11.0, gpu_kernels=330),
        _case("test_host_fed_step", "ftcl-waits", 16.0, step="ftcl", loop="waits", device="cuda", gpu_ms=15.0),
        _case("test_host_fed_step", "ftcl-no-waits", 12.0, step="ftcl", loop="no-waits", device="cuda", gpu_ms=12.0),
        _case("test_soft_dtw", "ours-cpu-B16-L32", 6.0, implementation="ours-cpu", B=16, L=32, dtype="float32",
              device="cuda", gpu_ms=4.0),
        _case("test_soft_dtw", "ours-triton-B16-L32", 1.0, implementation="ours-triton", B=16, L=32,
              dtype="float32", device="cuda", gpu_ms=0.5, chunks_ms=0.6),
        _case("test_soft_dtw", "pysdtw-B16-L32", 9.0, implementation="pysdtw", B=16, L=32, dtype="float32",
              device="cuda", gpu_ms=8.0),
    ]
    path = tmp_path / "latest-kernels.json"
    path.write_text(json.dumps({"machine_info": {"ftcl_device": "NVIDIA H100", "ftcl_torch": "2.11",
                                                 "ftcl_triton": "3.6.0", "ftcl_commit": "abc", "ftcl_date": "d"},
                                "benchmarks": cases}))
    return path


def test_soft_dtw_rows_compare_each_implementation_with_ours(gpu_json):
    tables = report.tables(gpu_json)
    frame = next(frame for title, frame in tables.items() if title.startswith("soft-DTW"))
    peer = frame[frame["implementation"] == "pysdtw"].iloc[0]
    assert peer["ms"] == 8.0 and peer["ms / ours-cpu ms"] == pytest.approx(2.0)
    assert peer["Gcell/s"] == pytest.approx(16 * 32 * 32 / 8.0 / 1e6)
    triton_row = frame[frame["implementation"] == "ours-triton"].iloc[0]  # the rows kernels, the chunks beside
    assert (triton_row["ms"], triton_row["chunks_ms"]) == (0.5, 0.6)


def test_gpu_tables_join_the_torch_times_to_the_triton_grid(gpu_json):
    tables = report.tables(gpu_json)
    grid = next(frame for title, frame in tables.items() if title.startswith("Triton kernels"))
    fsd = grid[grid["op"] == "fsd"].iloc[0]
    assert fsd["torch_ms"] == 8.0 and fsd["vs_torch"] == pytest.approx(8.0 / 0.05)
    assert fsd["vs_cuda_ref"] == pytest.approx(22.0)
    assert (fsd["family"], fsd["host_ms"], fsd["chunks_ms"]) == ("rows", 0.04, 0.5)
    lcs = grid[grid["op"] == "lcs"].iloc[0]  # timed once (no do_bench): the case's wall time
    assert lcs["torch_ms"] == 3000.0 and lcs["vs_torch"] == pytest.approx(3000.0 / 0.04) and pd.isna(lcs["vs_cuda_ref"])
    release = next(frame for title, frame in tables.items() if title.startswith("Release workload"))
    assert list(release["implementation"]) == ["ours", "ours-cuda-graph"]
    assert list(release["ours (ms)"]) == [0.2, 0.05] and release["GPU kernels"].iloc[0] == 91
    assert list(release["speed-up"]) == pytest.approx([2600.0 / 0.2, 2600.0 / 0.05])
    skew = next(frame for title, frame in tables.items() if title.startswith("Diagonal-major")).iloc[0]
    assert (skew["row_major_ms"], skew["diagonal_major_ms"], skew["speedup"]) == (4.0, 2.0, 2.0)
    skewed = next(frame for title, frame in tables.items() if title.startswith("Diagonal-major tables")).iloc[0]
    assert (skewed["row_major_ms"], skewed["skewed_ms"], skewed["speedup"]) == (5.0, 2.5, 2.0)
    assert (skewed["copy_ms"], skewed["torch_copy_ms"]) == (0.4, 1.1)
    depth = next(frame for title, frame in tables.items() if title.startswith("Rows kernels' prefetch")).iloc[0]
    assert (depth["prefetch_1_ms"], depth["prefetch_4_ms"], depth["best_prefetch"]) == (5.0, 2.0, 4)
    bands = next(frame for title, frame in tables.items() if title.startswith("Row bands")).iloc[0]
    assert (bands["bands_1_ms"], bands["bands_auto_ms"], bands["publish_64_ms"]) == (10.0, 4.0, 4.2)
    assert (bands["auto_bands"], bands["best_bands"], bands["best_speedup"]) == (4, 4, 2.5)
    host = next(frame for title, frame in tables.items() if title.startswith("Host time"))
    assert list(host["function"]) == ["run_backward (~:0)", "fsd_fwd (triton_dp.py:600)"]
    assert list(host["us per call"]) == [210.0, 12.5] and set(host["host_ms"]) == {0.5}
    tune = next(frame for title, frame in tables.items() if title.startswith("Launch configuration")).iloc[0]
    assert (tune["best_block"], tune["best_warps"], tune["best_speedup"]) == (256, 4, 1.2)
    step = next(frame for title, frame in tables.items() if title.startswith("Training step"))
    assert list(step["ratio to ACM-Net"]) == pytest.approx([1.0, 1.1]) and list(step["GPU kernels"]) == [210, 330]
    fed = next(frame for title, frame in tables.items() if title.startswith("Steps fed from the host")).iloc[0]
    assert (fed["step"], fed["waits"], fed["no-waits"], fed["speedup"]) == ("ftcl", 15.0, 12.0, 1.25)


def test_report_prints_every_table_and_appends_csv_rows(gpu_json, tmp_path, capsys):
    report.print_report(gpu_json, csv_dir=tmp_path / "csv")
    printed = capsys.readouterr().out
    assert "NVIDIA H100" in printed and "Triton kernels on the GPU" in printed and "Training step" in printed
    assert "Diagonal-major tables inside the API" in printed and "soft-DTW forward + backward" in printed
    rows = pd.read_csv(tmp_path / "csv" / "benchmarks.csv")
    assert len(rows) == len(json.loads(gpu_json.read_text())["benchmarks"]) and set(rows["device"]) == {"NVIDIA H100"}


def test_grid_without_torch_cases_still_reports(gpu_json):
    data = json.loads(gpu_json.read_text())
    data["benchmarks"] = [c for c in data["benchmarks"] if "torch_backend_gpu" not in c["name"]]
    gpu_json.write_text(json.dumps(data))
    grid = next(frame for title, frame in report.tables(gpu_json).items() if title.startswith("Triton kernels"))
    assert len(grid) == 2 and grid["vs_torch"].isna().all()


def test_cases_log_of_a_run_cut_short_gives_the_same_tables(gpu_json, tmp_path):
    """bench/results/cases.jsonl (written case by case) reports like the run's JSON; a case
    measured twice counts once, as last measured."""
    data = json.loads(gpu_json.read_text())
    machine = {"device": "NVIDIA H100", "torch": "2.11", "triton": "3.6.0", "commit": "abc", "date": "d"}
    log = tmp_path / "cases.jsonl"
    stale = data["benchmarks"][3]
    lines = [report.case_line(f"bench/bench_kernels.py::{stale['name']}", 1.0, 1.0, 1, {**stale["extra_info"],
                                                                                      "gpu_ms": 99.0}, machine)]
    lines += [report.case_line(f"bench/bench_kernels.py::{c['name']}", c["stats"]["median"], c["stats"]["mean"],
                               c["stats"]["rounds"], c["extra_info"], machine) for c in data["benchmarks"]]
    log.write_text("".join(lines))
    from_log, from_json = report.tables(log), report.tables(gpu_json)
    assert list(from_log) == list(from_json)
    for title in from_json:
        pd.testing.assert_frame_equal(from_log[title].reset_index(drop=True), from_json[title].reset_index(drop=True),
                                      check_dtype=False)
    assert report.load(log)[1] == machine


@pytest.mark.parametrize("argv,message", [
    (["nonsense"], "invalid choice: 'nonsense'"),
    (["kernels", "--x"], "unrecognized arguments: --x"),
    (["compile", "--bogus"], "unrecognized arguments: --bogus"),
    (["compile", "-k", "x"], "unrecognized arguments: -k x"),  # compile and report select nothing
    (["report", "a.json", "b.json"], "unrecognized arguments: b.json"),
    (["--scale", "0.1"], "python -m bench: error: "),
])
def test_bench_cli_refuses_what_it_would_ignore(argv, message, capsys, monkeypatch):
    from bench import cli as bench_cli
    monkeypatch.setattr(bench_cli, "run_pytest",
                        lambda what, select=None: pytest.fail("ran benchmarks despite a bad argument"))
    with pytest.raises(SystemExit) as stop:
        bench_cli.main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and message in err, err


def test_a_selection_of_no_case_is_a_one_line_error(capsys, monkeypatch):
    from bench import cli as bench_cli
    # The selection is collected in this process, and bench/conftest.py unsets TRITON_INTERPRET (the
    # benchmarks run compiled kernels): unset it here, so that monkeypatch puts it back for the tests
    # that run interpreted kernels after this one in the same worker.
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert bench_cli.main(["tune", "-k", "NO_MATCH"]) == 2
    err = capsys.readouterr().err
    assert err == "error: -k 'NO_MATCH' selects none of the cases of python -m bench tune\n", err


def test_bench_cases_can_be_selected_and_keep_their_own_json(monkeypatch, tmp_path):
    """`python -m bench kernels -k EXPR` (what gpu_check.sh's bands and kernels stages run) passes
    EXPR to pytest and names its JSON after it, so two selections of one benchmark keep both files."""
    import bench.common
    from bench import cli as bench_cli
    runs = []
    # The selections' collection (whether they select anything) is not a run.
    monkeypatch.setattr(pytest, "main", lambda args: 0 if "--collect-only" in args else runs.append(args) or 0)
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path)
    assert bench_cli.main(["kernels", "-k", "test_row_bands"]) == 0
    assert bench_cli.main(["kernels", "-k", "not test_row_bands"]) == 0
    assert bench_cli.main(["eval"]) == 0
    assert [args[args.index("-k") + 1] if "-k" in args else None for args in runs] == [
        "test_row_bands", "not test_row_bands", None]
    assert [next(a for a in args if a.startswith("--benchmark-json=")).rsplit("/", 1)[1] for args in runs] == [
        "latest-kernels-test-row-bands.json", "latest-kernels-not-test-row-bands.json", "latest-eval.json"]


def test_gpu_targets_compare_each_measure_with_its_limit(tmp_path):
    cases = [
        _case("test_release_workload", "ours", 0.9, device="cuda", backend="triton", gpu_ms=0.31),
        _case("test_release_workload", "ours-cuda-graph", 0.3, device="cuda", backend="triton", gpu_ms=0.2),
        _case("test_release_workload", "release-loops", 2600.0, device="cuda", backend="triton"),
        _case("test_triton_grid", "fsd-fwd+bwd-B256-L512", 1.0, op="fsd", mode="fwd+bwd", B=256, L=512, gpu_ms=1.0,
              gcell_s=67.1, vs_cuda_ref=41.8, peak_mib=1.0),
        _case("test_triton_grid", "fsd-fwd+bwd-B16-L32", 1.0, op="fsd", mode="fwd+bwd", B=16, L=32, gpu_ms=0.2,
              gcell_s=0.08, vs_cuda_ref=5.5, peak_mib=1.0),  # small: no Gcell/s target there, but the x10 one
        _case("test_triton_grid", "lcs-fwd+bwd-B256-L512", 1.0, op="lcs", mode="fwd+bwd", B=256, L=512, gpu_ms=1.6,
              gcell_s=41.9, vs_cuda_ref=26.1, peak_mib=1.0),
        _case("test_triton_grid", "lcs-fwd-B1024-L512", 1.0, op="lcs", mode="fwd", B=1024, L=512, gpu_ms=0.5,
              gcell_s=5.0, vs_cuda_ref=None, peak_mib=1.0),  # forward only: counts for neither target
        _case("test_training_step", "acm-32-videos", 11.0, step="acm-32-videos", device="cuda", feature_dim=2048,
              gpu_ms=10.0),
        _case("test_training_step", "ftcl-16-pairs", 12.0, step="ftcl-16-pairs", device="cuda", feature_dim=2048,
              gpu_ms=11.2),
        {**_case("test_per_epoch_evaluation", "1", 420.0, workers=1,
                 stage="per-epoch evaluation (210 videos, 2048-d, cuda, 1 process)"),
         "fullname": "bench/bench_eval.py::test_per_epoch_evaluation[1]"},
        {**_case("test_per_epoch_evaluation", "default", 280.0, workers=8,
                 stage="per-epoch evaluation (210 videos, 2048-d, cuda, 8 processes)"),
         "fullname": "bench/bench_eval.py::test_per_epoch_evaluation[default]"},
    ]
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": cases}))
    targets = report.tables(path)["GPU targets"].set_index("target")
    assert targets.loc["release workload, forward + backward (ms)", "measured"] == 0.2  # the best implementation
    got = {what.split(",")[0].split(" (")[0]: (row["measured"], row["met"]) for what, row in targets.iterrows()}
    assert got["FSD forward + backward at B·L² ≥ 64 M cells"] == (67.1, "yes")
    assert got["LCS forward + backward at B·L² ≥ 64 M cells"] == (41.9, "NO")
    assert got["FSD speed-up over the CUDA reference"] == (5.5, "NO")
    assert got["LCS speed-up over the CUDA reference"] == (26.1, "yes")
    assert got["FTCL step / ACM-Net step"][0] == pytest.approx(1.12) and got["FTCL step / ACM-Net step"][1] == "yes"
    assert got["per-epoch evaluation"] == (280.0, "yes")  # the 8-process run, as training evaluates
    assert len(targets) == 7
    # With graph replays (a later grid) the x10 target is also read from them, as its own line.
    for case in cases:
        if case["name"].startswith("test_triton_grid") and case["extra_info"]["mode"] == "fwd+bwd":
            case["extra_info"].update(graph_ms=0.02, vs_cuda_ref_graph=case["extra_info"]["vs_cuda_ref"] * 10)
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": cases}))
    targets = report.tables(path)["GPU targets"].set_index("target")
    graph = targets.loc["FSD speed-up over the CUDA reference replayed from a CUDA graph, smallest over the grid"]
    assert (graph["measured"], graph["met"]) == (55.0, "yes") and len(targets) == 9
    grid = next(frame for title, frame in report.tables(path).items() if title.startswith("Triton kernels"))
    assert {"graph_ms", "vs_cuda_ref_graph"} <= set(grid.columns)
    # Row bands: the slowest big point of the bands grid at its fastest count, per op.
    cases += [_case("test_row_bands", f"fsd-B{b}-L{n}", 1.0, op="fsd", mode="fwd+bwd", B=b, L=n, best_gcell_s=g)
              for b, n, g in [(64, 2048, 61.0), (256, 512, 48.5), (16, 512, 9.0)]]  # 16 x 512: too small to count
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": cases}))
    targets = report.tables(path)["GPU targets"].set_index("target")
    banded = targets.loc["FSD, the same over the row-bands grid with its fastest band count (Gcell/s)"]
    assert (banded["measured"], banded["met"]) == (48.5, "NO") and len(targets) == 10


def test_no_gpu_targets_from_cpu_cases(gpu_json, tmp_path):
    cpu = [_case("test_training_step", "acm-32-videos", 300.0, step="acm-32-videos", device="cpu", feature_dim=256),
           _case("test_training_step", "ftcl-16-pairs", 330.0, step="ftcl-16-pairs", device="cpu", feature_dim=256)]
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": cpu}))
    assert "GPU targets" not in report.tables(path)


def test_report_targets_flag_prints_only_the_targets(gpu_json, tmp_path, capsys):
    from bench import cli as bench_cli
    assert bench_cli.main(["report", "--targets", str(gpu_json)]) == 0
    printed = capsys.readouterr().out
    assert "release workload, forward + backward (ms)" in printed and "Triton kernels on the GPU" not in printed
    assert not (tmp_path / "benchmarks.csv").exists()
    empty = tmp_path / "cases.jsonl"
    empty.write_text("")
    assert bench_cli.main(["report", "--targets", str(empty)]) == 0
    assert capsys.readouterr().out == f"no GPU target measured in {empty}\n"


@pytest.mark.parametrize("content,suffix", [('{"results": {}}', ".json"), ("[1, 2]", ".json"), ("not json", ".json"),
                                            ('{"case": "no-separator"}\n', ".jsonl"), ("\xff", ".json")])
def test_a_file_that_is_not_a_benchmark_file_is_one_line(tmp_path, capsys, content, suffix):
    from bench import cli as bench_cli
    path = tmp_path / f"other{suffix}"
    path.write_text(content, encoding="latin-1")
    assert bench_cli.main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: not a pytest-benchmark JSON"), err
