"""Start-up cost: what each command imports before it does anything (checked through ``sys.modules``)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from shoulders import cli
from shoulders.models import _facts

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "timm", "torchvision", "sklearn", "matplotlib", "scipy")


def imported_by(*argv: str) -> list[str]:
    """The heavy top-level packages in ``sys.modules`` after ``shoulders ARGV`` ran in a fresh interpreter."""
    code = ("import contextlib, io, json, sys\n"
            "from shoulders.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            f"        main({list(argv)!r})\n"
            "    except SystemExit:\n"
            "        pass\n"
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [("--version",), ("--help",), ("zoo",), ("zoo", "--json"), ("predict", "--help")])
def test_light_commands_import_nothing_heavy(argv: tuple[str, ...]) -> None:
    assert imported_by(*argv) == []


def test_import_shoulders_is_lazy_but_complete() -> None:
    code = ("import sys, shoulders\n"
            "assert not {'torch', 'timm', 'sklearn'} & set(sys.modules), sorted(sys.modules)\n"
            "from shoulders import TransferClassifier\n"
            "assert TransferClassifier.__module__ == 'shoulders.classifier'\n"
            "missing = [n for n in shoulders.__all__ if not hasattr(shoulders, n)]\n"
            "assert not missing, missing\n"
            "assert set(shoulders.__all__) <= set(dir(shoulders))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_unknown_public_name_raises_attribute_error() -> None:
    import shoulders

    with pytest.raises(AttributeError, match="nope"):
        shoulders.nope  # noqa: B018


def test_malloc_reexec_only_for_commands_that_run_a_network(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("SHOULDERS_NO_REEXEC", raising=False)
    monkeypatch.setattr(cli.os, "execve", lambda exe, args, env: calls.append(args[3:]) or sys.exit(0))
    monkeypatch.setattr(cli.sys, "platform", "linux")
    for argv, reexec in ((["zoo"], False), (["--version"], False), (["predict", "x.png"], True),
                         (["train", "d", "--out", "o"], True)):
        calls.clear()
        monkeypatch.setattr(cli.sys, "argv", ["shoulders", *argv])
        with contextlib.suppress(SystemExit):  # argparse's --version, or the fake execve
            cli.main()
        assert (calls == [argv]) is reexec, argv


def test_facts_snapshot_matches_installed_timm() -> None:
    """The zoo's snapshot of timm's facts is what timm says now; if not: python -m shoulders.models._facts."""
    stored = json.loads(_facts.SNAPSHOT.read_text())
    if stored["timm"] != _facts.timm_version():
        pytest.skip(f"snapshot is for timm {stored['timm']}; installed {_facts.timm_version()} is asked directly")
    assert stored == _facts.snapshot_from_timm(sorted(stored["models"]), sorted(stored["is_model"]))


def test_backbone_names_from_the_snapshot_agree_with_timm(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same names pass and the same typos fail whether the snapshot or timm itself answers."""
    from shoulders.models import _zoo

    names = ("resnet18", "resnet18.a1_in1k", "lite0", "resnet5", "resnet18.no_such_tag", "vit_base_patch16_224")

    def answers() -> list[str]:
        out = []
        for name in names:
            try:
                out.append(_zoo.resolve_backbone_name(name))
            except ValueError as e:
                out.append(str(e).split(";")[0])
        return out

    if _facts.timm_names() is None:
        pytest.skip("the snapshot is for another timm version: timm answers in both cases")
    from_snapshot = answers()
    monkeypatch.setattr(_zoo, "timm_names", lambda: None)
    assert answers() == from_snapshot
    assert from_snapshot[:3] == ["resnet18", "resnet18.a1_in1k", "tf_efficientnet_lite0"]


def test_facts_for_an_unlisted_model_come_from_timm() -> None:
    facts = _facts.timm_facts("resnet18")
    assert (facts.input_size, facts.num_features) == (224, 512)
    assert asdict(facts)["hf_hub_id"].startswith("timm/resnet18")
    assert _facts.is_timm_model("resnet18") and not _facts.is_timm_model("no_such_net")


@pytest.mark.slow
def test_predict_imports_neither_scikit_learn_nor_matplotlib(tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "one.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(image)
    heavy = imported_by("predict", str(image))
    assert "torch" in heavy and not {"sklearn", "matplotlib", "scipy"} & set(heavy)
