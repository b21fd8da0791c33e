import pytest

from l0.cli import main


def test_demo_calibrates_the_schools_within_the_budget(capsys):
    assert main(["demo", "--records", "800"]) == 0
    out = capsys.readouterr().out
    last = out.split("worst relative error over all 238 totals: calibrated ")[1]
    worst, kept = float(last.split()[0]), int(last.split(" with ")[1].split()[0])
    assert 700 <= kept <= 800
    assert worst <= 1e-3
    random = float(out.split("random sample of the same size ")[-1].split("%")[0])
    assert random > 10.0  # the point of the demo: a random sample misses badly


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit):
        main(["nope"])
