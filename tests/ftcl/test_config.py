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
