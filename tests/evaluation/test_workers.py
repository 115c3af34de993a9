"""evaluation.workers: proposals over worker processes equal those of one process."""
import numpy as np
import pytest

from ftcl import evaluation
from ftcl.evaluation import proposals as prop


def _outputs(seed, n_videos=13, n_cls=5):
    """Random per-video outputs of uneven lengths, CAS quantised so that equal scores (ties) occur."""
    rng = np.random.default_rng(seed)
    outputs = {}
    for v in range(n_videos):
        length = int(rng.integers(3, 60))
        cas = np.round(rng.dirichlet(np.ones(n_cls + 1) * 0.3, size=length)[:, :n_cls] * 8) / 8
        att = np.clip(np.convolve(rng.random(length), np.ones(3) / 3, mode="same"), 0, 1)
        outputs[f"video_{v:02d}"] = evaluation.VideoOutput(cas=cas, attention=att,
                                                           video_scores=rng.dirichlet(np.ones(n_cls) * 0.5),
                                                           original_snippets=int(length * rng.uniform(1, 3)))
    return outputs


def _exit_in_a_worker(chunk):
    import os
    if os.getpid() != chunk[1]:
        os._exit(3)
    return chunk[0] * 2


def _worker_pid(_):
    import os
    return os.getpid()


@pytest.mark.parametrize("workers", [2, 3, 40])
@pytest.mark.parametrize("seed", range(3))
def test_proposals_over_worker_processes_equal_each_videos_own(seed, workers):
    """Spread over processes, every video's proposals (and their order: class, then descending score,
    ties as the release breaks them) are those of video_proposals() on that video alone."""
    from ftcl.evaluation.pipeline import proposals
    outputs = _outputs(seed)
    config = evaluation.ProposalConfig()
    video, label, score, start, end = proposals(outputs, config, workers=workers)
    assert len(video) > 50 and np.all(np.diff(video) >= 0)
    for v, out in enumerate(outputs.values()):
        factor = prop.t_factor(out.original_snippets, len(out.attention))
        want = prop.video_proposals(out.cas, out.attention, out.video_scores, factor, config)
        mine = video == v
        for got, expected in zip((label[mine], score[mine], start[mine], end[mine]), want):
            np.testing.assert_array_equal(got, expected)


def test_proposals_with_workers_on_no_video_or_one():
    from ftcl.evaluation.pipeline import proposals
    one = dict(list(_outputs(0).items())[:1])
    for outputs in ({}, one):
        got = proposals(outputs, evaluation.ProposalConfig(), workers=4)
        want = proposals(outputs, evaluation.ProposalConfig(), workers=1)
        assert all(np.array_equal(a, b) for a, b in zip(got, want))


def test_a_broken_worker_pool_falls_back_to_this_process():
    import os

    from ftcl.evaluation import workers
    workers.shutdown()
    chunks = [(k, os.getpid()) for k in range(5)]
    assert workers.map_chunks(_exit_in_a_worker, chunks, 2) == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("value,message", [("two", "whole number"), ("0", "at least 1")])
def test_eval_workers_variable_is_checked(monkeypatch, value, message):
    from ftcl.evaluation import workers
    monkeypatch.setenv("FTCL_EVAL_WORKERS", value)
    with pytest.raises(ValueError, match=f"FTCL_EVAL_WORKERS.*{message}"):
        workers.default_workers()
    monkeypatch.setenv("FTCL_EVAL_WORKERS", "3")
    assert workers.default_workers() == 3
    monkeypatch.delenv("FTCL_EVAL_WORKERS")
    assert 1 <= workers.default_workers() <= workers.MAX_DEFAULT_WORKERS


def test_worker_processes_start_from_the_calling_thread():
    """workers.start forks the whole pool now (training calls it before its epoch-end thread exists);
    the next map runs on those processes."""
    import multiprocessing
    import os

    from ftcl.evaluation import workers
    workers.shutdown()
    workers.start(1)
    assert workers._pool is None
    before = {p.pid for p in multiprocessing.active_children()}
    workers.start(2)
    started = {p.pid for p in multiprocessing.active_children()} - before
    assert len(started) == 2
    assert set(workers.map_chunks(_worker_pid, list(range(6)), 2)) <= started and os.getpid() not in started
    workers.shutdown()


def _sigint_ignored(_):
    import signal
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_workers_leave_ctrl_c_to_their_parent():
    """Ctrl-C reaches the whole process group; a worker that took it would die with a traceback."""
    from ftcl.evaluation import workers
    try:
        assert workers.map_chunks(_sigint_ignored, list(range(8)), 2) == [True] * 8
    finally:
        workers.shutdown()
