"""ftcl.config: presets are data, and a new hyper-parameter is one field (its flag, help, check and
--resume rule follow from it)."""
import dataclasses

import pytest

from ftcl import config, tool
from ftcl.train import cli as train_cli
from tests.helpers import one_line_error


def test_a_new_hyper_parameter_is_one_field(monkeypatch, tmp_path, capsys):
    @dataclasses.dataclass
    class WithNewSetting(config.Config):
        margin_scale: float = config.option(2.0, "scale of a new margin", tool.number(0, False))

    monkeypatch.setattr(config, "Config", WithNewSetting)
    parser = train_cli.build_parser()
    assert "--margin-scale" in parser.format_help() and "scale of a new margin (default 2)" in parser.format_help()
    given = train_cli.run_options(parser.parse_args(["baseline", "--data-dir", "d", "--run-dir", "r",
                                                     "--margin-scale", "3"]))
    assert isinstance(given.config, WithNewSetting) and given.config.margin_scale == 3.0
    assert given.config.to_dict()["margin_scale"] == 3.0  # stored in config.json and every checkpoint
    default = train_cli.run_options(parser.parse_args(["baseline", "--data-dir", "d", "--run-dir", "r"]))
    assert default.config.margin_scale == 2.0
    with pytest.raises(SystemExit) as stop:
        train_cli.main(["baseline", "--data-dir", "d", "--run-dir", "r", "--margin-scale", "0"])
    assert stop.value.code == 2
    one_line_error(capsys, "argument --margin-scale", "0")
    with pytest.raises(SystemExit) as stop:
        train_cli.main(["baseline", "--run-dir", str(tmp_path), "--resume", "--margin-scale", "3"])
    assert stop.value.code == 2
    one_line_error(capsys, "--margin-scale cannot change a run on --resume")


def test_stage_only_flags_are_refused_for_the_other_stage(capsys):
    for argv, flag in ((["baseline", "--pairs", "in-batch"], "--pairs"),
                       (["ftcl", "--init", "x.pt", "--objective", "acm"], "--objective")):
        with pytest.raises(SystemExit) as stop:
            train_cli.main([*argv, "--data-dir", "d", "--run-dir", "r"])
        assert stop.value.code == 2
        one_line_error(capsys, f"{flag} applies to")


def test_epochs_set_the_stage_s_own_count():
    parser = train_cli.build_parser()
    base = ["--data-dir", "d", "--run-dir", "r", "--epochs", "7"]
    assert train_cli.run_options(parser.parse_args(["baseline", *base])).config.epochs == 7
    ftcl = train_cli.run_options(parser.parse_args(["ftcl", "--init", "x.pt", *base])).config
    assert (ftcl.ftcl_epochs, ftcl.epochs) == (7, config.Config().epochs)


def test_presets_are_the_values_they_change():
    for name, values in config.PRESETS.items():
        made = config.preset(name)
        assert made.preset == name
        for key, value in values.items():
            assert getattr(made, key) == value, (name, key)
        unchanged = {f.name for f in dataclasses.fields(config.Config)} - set(values) - {"preset"}
        assert all(getattr(made, key) == getattr(config.Config(), key) for key in unchanged), name
    with pytest.raises(ValueError, match="unknown preset"):
        config.preset("kinetics")


@pytest.mark.parametrize("name", ["activitynet13", "activitynet12"])
def test_activitynet_presets_train_as_acm_net_does(name):
    """Where the FTCL release has no ActivityNet code: ACM-Net's 1000 epochs, evaluated on every second
    epoch, ACM-Net alone in the baseline with its 5/1/1 classification weights; batch 64 (the FTCL
    README's command); the FTCL stage's weights 1/1/1 (the release's FTCLLoss as it builds it)."""
    made = config.preset(name)
    assert (made.epochs, made.eval_every, made.batch_size, made.objective) == (1000, 2, 64, "acm")
    assert made.branch_weights == (5.0, 1.0, 1.0) and made.ftcl_branch_weights == (1.0, 1.0, 1.0)
    thumos = config.preset("thumos14")
    assert (thumos.epochs, thumos.eval_every, thumos.batch_size, thumos.objective) == (500, 1, 16, "release")
    parser = train_cli.build_parser()
    argv = ["--data-dir", "d", "--run-dir", "r", "--preset", name, "--eval-every", "3", "--batch-size", "8",
            "--branch-weights", "2,1,0.5"]
    base = train_cli.run_options(parser.parse_args(["baseline", *argv, "--objective", "release"])).config
    assert (base.eval_every, base.batch_size, base.objective, base.branch_weights) == (3, 8, "release", (2, 1, 0.5))
    ftcl = train_cli.run_options(parser.parse_args(["ftcl", "--init", "x.pt", *argv])).config
    assert ftcl.ftcl_branch_weights == (2, 1, 0.5) and ftcl.branch_weights == (5.0, 1.0, 1.0)


def test_a_config_from_before_per_stage_weights_keeps_its_weights_in_both_stages():
    old = config.preset("activitynet13").to_dict()
    del old["ftcl_branch_weights"]
    assert config.Config.from_dict(old).ftcl_branch_weights == (5.0, 1.0, 1.0)


@pytest.mark.parametrize("kind", ["baseline", "ftcl"])
def test_help_lists_every_flag(kind, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main([kind, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in train_cli.config_flags())


def test_the_proposal_settings_have_one_definition():
    """Config holds evaluation's ProposalConfig, made by its own defaults, and none of its fields
    again; what a Config holds there is what every evaluation takes (inference.proposal_config, which
    training's evaluation, ftcl.evaluate and ftcl.localize use)."""
    from ftcl import evaluation, inference
    assert not {f.name for f in dataclasses.fields(evaluation.ProposalConfig)} & {
        f.name for f in dataclasses.fields(config.Config)}
    assert config.Config.__dataclass_fields__["proposals"].default_factory is evaluation.ProposalConfig
    changed = dataclasses.replace(evaluation.ProposalConfig(), class_threshold=0.61, nms_iou=0.3)
    made = config.preset("thumos14", proposals=changed)
    assert inference.proposal_config(made, fixed_nms=True) == dataclasses.replace(changed, fixed=True)
    assert config.Config.from_dict(made.to_dict()).proposals == changed


def test_a_config_from_before_the_proposal_object_keeps_its_proposal_settings():
    """config.json and checkpoints written with the flat keys (cls_threshold, oic_score_mix, fps, ...)."""
    new = config.preset("activitynet13")
    old = {key: value for key, value in new.to_dict().items() if key != "proposals"}
    flat = {"cls_threshold": "class_threshold", "upscale": "upscale", "cas_thresholds": "cas_thresholds",
            "att_thresholds": "att_thresholds", "oic_outer_ratio": "outer_ratio",
            "oic_video_score_weights": "video_score_weights", "oic_score_mix": "score_mix", "nms_iou": "nms_iou",
            "frames_per_snippet": "frames_per_snippet", "fps": "fps"}
    old.update({key: list(value) if isinstance(value, tuple) else value
                for key, value in ((k, getattr(new.proposals, v)) for k, v in flat.items())})
    assert config.Config.from_dict(old) == new
    assert config.Config.from_dict(new.to_dict()) == new
