import pytest

from l0.cli import main


def test_demo_prints_a_selection_within_one_percent(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    selected = int(out.split("SampleGate.fit selected ")[1].split()[0])
    assert 200 <= selected <= 300
    worst = float(out.split("worst relative error: selected ")[1].split("%")[0])
    assert worst < 1.0


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit):
        main(["nope"])
