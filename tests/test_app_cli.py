"""Command-line flags and security defaults."""

import pytest

import app


def test_defaults_bind_localhost_and_bundled_model():
    args = app.parse_args([])
    assert args.host == "127.0.0.1" and args.port == 7860 and args.model == "bundled"
    assert args.trust_remote_code is False and args.auth is None


def test_flags_parse():
    args = app.parse_args(["--model", "x/y", "--port", "9000", "--device", "cpu", "--load-in-4bit",
                           "--auth", "me:secret", "--trust-remote-code", "--data-dir", "/tmp/d"])
    assert (args.model, args.port, args.device, args.load_in_4bit, args.auth) == ("x/y", 9000, "cpu", True,
                                                                                  "me:secret")
    assert args.trust_remote_code and str(args.data_dir) == "/tmp/d"


@pytest.mark.parametrize("bad", [["--auth", "nocolon"], ["--auth", ":pass"], ["--load-in-4bit", "--load-in-8bit"],
                                 ["--device", "tpu"]])
def test_bad_flags_exit_with_usage(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        app.parse_args(bad)
    assert exc.value.code == 2


def test_exposure_warning_only_without_auth_off_localhost():
    assert app.exposure_warning("127.0.0.1", None) is None
    assert app.exposure_warning("0.0.0.0", "u:p") is None
    assert "without --auth" in app.exposure_warning("0.0.0.0", None)


def test_presenter_flag_is_off_by_default_and_documented(capsys):
    assert app.parse_args([]).presenter is False and app.parse_args(["--presenter"]).presenter is True
    with pytest.raises(SystemExit):
        app.parse_args(["--help"])
    usage = " ".join(capsys.readouterr().out.split())
    assert "start in presenter mode: large type, high contrast, for a projector" in usage


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    """The training worker runs with the repository as its cwd: a relative --data-dir or --model folder given
    in another directory made every run fail."""
    (tmp_path / "ckpt").mkdir()
    monkeypatch.chdir(tmp_path)
    args = app.parse_args(["--data-dir", "data", "--model", "./ckpt", "--allow-path", "shared"])
    assert args.data_dir == tmp_path.resolve() / "data"
    assert args.model == str(tmp_path.resolve() / "ckpt")
    assert args.allow_path == [tmp_path.resolve() / "shared"]
    assert app.parse_args(["--model", "x/y"]).model == "x/y"  # a hub id stays as is
