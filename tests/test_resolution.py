"""The resolution step: one road per setting, names checked before data, the recorded config repeats the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shoulders import TransferClassifier
from shoulders import classifier as classifier_module
from shoulders.advisor import plan_for_quadrant
from shoulders.advisor.plan import default_plan
from shoulders.cli import build_parser, flag_message, main
from shoulders.config import RunConfig
from shoulders.resolution import BackboneFacts, MachineFacts, check_names, resolve_config
from shoulders.run_folder import CONFIG_NAME, METRICS_NAME, read_history
from shoulders.strategies import STRATEGIES, FrozenStrategy, PartialStrategy

from conftest import TINY

BACKBONE = BackboneFacts(name=TINY, image_size=224, crop_pct=0.875, num_blocks=5)
CPU = MachineFacts(device="cpu", native_bf16=True, num_workers=0)


def user(**values) -> RunConfig:
    return RunConfig().override(values)


# -- the pure function -----------------------------------------------------------------------------------------
class TestResolveConfig:
    def test_plan_fills_only_unset_fields_and_the_input_is_not_mutated(self) -> None:
        cfg = user(epochs=3, augment="strong")
        out, plan = resolve_config(cfg, plan_for_quadrant(3, depth=4), BACKBONE, CPU)
        assert (out.strategy.name, out.strategy.trainable_blocks) == ("partial", 4)
        assert (out.train.epochs, out.data.augment, out.train.lr, out.train.backbone_lr_mult) == (3, "strong", 1e-3, 1.0)
        assert cfg.strategy.name == "auto" and cfg.train.lr is None and cfg.data.image_size is None
        assert (plan.strategy, plan.epochs, plan.augment, plan.trainable_blocks) == ("partial", 3, "strong", 4)
        assert "epochs=3 set by the user (the plan: 10)" in plan.reasons

    def test_nothing_is_left_unset_or_auto(self) -> None:
        out, _ = resolve_config(user(strategy="frozen"), None, BACKBONE, CPU)
        resolved = {**vars(out.data), **vars(out.strategy), **vars(out.train)}
        off_switches = {"max_per_class", "val_max", "patience", "budget", "max_steps"}  # None is their "off" value, not "unset"
        assert not [k for k, v in resolved.items() if v is None and k not in off_switches]
        assert "auto" not in resolved.values()
        assert (out.data.image_size, out.data.crop_pct, out.data.batch_size) == (224, 0.875, 64)
        assert (out.train.device, out.train.precision, out.train.inference_precision) == ("cpu", "fp32", "bf16")
        assert (out.strategy.head_solver, out.strategy.trainable_blocks, out.train.epochs) == ("lbfgs", 0, 30)

    def test_small_images_fine_tuned_without_augmentation_keep_the_whole_frame(self) -> None:
        """Quadrant 1's recipe (full, no augmentation) on 28 px images: no centre crop, with its reason; the same
        images under random-crop augmentation, the frozen features and large images keep the backbone's crop."""
        out, plan = resolve_config(user(), plan_for_quadrant(1), BACKBONE, CPU, native=28)
        assert out.data.crop_pct == 1.0 and out.data.augment == "none"
        assert any(r.startswith("centre crop: the whole image") and "28 px" in r for r in plan.reasons)
        kept = [resolve_config(user(), plan_for_quadrant(3, depth=4), BACKBONE, CPU, native=28),  # light
                resolve_config(user(strategy="frozen"), None, BACKBONE, CPU, native=28),
                resolve_config(user(), plan_for_quadrant(1), BACKBONE, CPU, native=300),
                resolve_config(user(), plan_for_quadrant(1), BACKBONE, CPU)]  # size unknown
        assert [o.data.crop_pct for o, _ in kept] == [0.875] * 4
        assert all(any(r.startswith("centre crop: the backbone's 0.875") for r in p.reasons) for _, p in kept)
        mine, plan = resolve_config(user(crop_pct=0.95), plan_for_quadrant(1), BACKBONE, CPU, native=28)
        assert mine.data.crop_pct == 0.95 and "centre crop: crop_pct 0.95 set by the user" in plan.reasons

    def test_resolving_a_resolved_config_changes_nothing(self) -> None:
        once, _ = resolve_config(user(), plan_for_quadrant(2, depth=3), BACKBONE, CPU)
        twice, _ = resolve_config(once, None, BACKBONE, MachineFacts("cpu", native_bf16=False, num_workers=4))
        assert twice == once

    def test_explicit_depth_under_auto_selects_partial_with_its_defaults(self) -> None:
        out, plan = resolve_config(user(trainable_blocks=3), plan_for_quadrant(4), BACKBONE, CPU)
        assert (out.strategy.name, out.strategy.trainable_blocks, out.train.epochs) == ("partial", 3, 10)
        advisor_reasons = plan_for_quadrant(4).reasons
        assert plan.strategy == "partial" and plan.reasons[:len(advisor_reasons)] == advisor_reasons
        assert ("trainable_blocks=3 set by the user selects strategy 'partial' (the advisor planned 'frozen'); its "
                "settings are 'partial''s defaults") in plan.reasons

    def test_label_smoothing_is_the_plan_s_where_measured_and_the_user_s_when_set(self) -> None:
        out, plan = resolve_config(user(), plan_for_quadrant(3, depth=4), BACKBONE, CPU)
        assert out.train.label_smoothing == plan.label_smoothing == 0.1  # small, different data: measured to pay
        assert any("label smoothing 0.1" in r for r in plan.reasons)
        for q in (1, 2):  # large data: not measured, so off
            assert resolve_config(user(), plan_for_quadrant(q, depth=4), BACKBONE, CPU)[0].train.label_smoothing == 0
        assert resolve_config(user(strategy="full"), plan_for_quadrant(3, depth=4), BACKBONE,
                              CPU)[0].train.label_smoothing == 0  # an explicit strategy keeps its own defaults
        mine, plan = resolve_config(user(label_smoothing=0.0), plan_for_quadrant(3, depth=4), BACKBONE, CPU)
        assert mine.train.label_smoothing == 0.0 and "label_smoothing=0.0 set by the user (the plan: 0.1)" in plan.reasons

    def test_explicit_strategy_takes_its_own_defaults(self) -> None:
        out, plan = resolve_config(user(strategy="full"), plan_for_quadrant(4), BACKBONE, CPU)
        assert (out.strategy.name, out.train.epochs, out.data.augment, out.strategy.trainable_blocks) == (
            "full", 10, "none", 5)
        assert plan.reasons[-1] == ("strategy='full' set by the user: strategy 'full' (the advisor planned "
                                    "'frozen'); its settings are 'full''s defaults")

    @pytest.mark.parametrize("hflip", [False, True])
    def test_the_plan_records_the_measured_tta_rule(self, hflip: bool) -> None:
        from shoulders.explain.tta_rule import tta_decision

        cfg = user()
        cfg.data.hflip = hflip
        _, plan = resolve_config(cfg, plan_for_quadrant(4), BACKBONE, CPU)
        rule = tta_decision(hflip)
        assert plan.tta == rule.to_dict() and plan.tta["views"] == list(rule.views)
        assert f"test-time augmentation: {rule.reason}" in plan.reasons
        assert ("flip" in " ".join(plan.tta["views"])) is hflip

    def test_a_fraction_of_blocks_resolves_to_a_count(self) -> None:
        out, _ = resolve_config(user(strategy="partial", trainable_blocks=0.4), None, BACKBONE, CPU)
        assert out.strategy.trainable_blocks == 2

    def test_settings_a_strategy_cannot_honour_are_errors_naming_the_parameter(self) -> None:
        with pytest.raises(ValueError, match=r"trainable_blocks=2 is for strategy='partial'"):
            resolve_config(user(strategy="frozen", trainable_blocks=2), None, BACKBONE, CPU)
        with pytest.raises(ValueError, match=r"head_solver='lbfgs' needs a linear head"):
            resolve_config(user(strategy="frozen", head_solver="lbfgs", head_hidden=8), None, BACKBONE, CPU)
        with pytest.raises(ValueError, match=r"precision='fp16' autocast is for CUDA"):
            resolve_config(user(strategy="full", precision="fp16"), None, BACKBONE, CPU)

    def test_cuda_precision(self) -> None:
        cuda = MachineFacts(device="cuda", native_bf16=False, num_workers=7)
        out, _ = resolve_config(user(strategy="full"), None, BACKBONE, cuda)
        assert (out.train.device, out.train.precision, out.train.inference_precision) == ("cuda", "fp16", "fp16")
        assert out.data.num_workers == 7


class TestStrategiesOwnTheirDefaults:
    def test_plans_read_the_strategy_classes(self) -> None:
        assert default_plan("frozen").epochs == FrozenStrategy.default_epochs == 30
        assert default_plan("partial").trainable_blocks == PartialStrategy.default_depth == 2
        assert plan_for_quadrant(1).epochs == STRATEGIES.get("full").default_epochs

    def test_cli_help_lists_the_registry(self) -> None:
        text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
        assert all(name in text for name in STRATEGIES) and "frozen 30" in text


# -- names before data -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting, message", [
    ({"strategy": "fulll"}, r"strategy='fulll'.*did you mean full\?.*valid: full, partial, frozen"),
    ({"backbone": "resnet5"}, r"backbone='resnet5'.*did you mean"),
    ({"augment": "lihgt"}, r"augment='lihgt'.*did you mean light\?"),
    ({"head_solver": "lbgfs"}, r"head_solver='lbgfs' is unknown; did you mean lbfgs\?"),
])
def test_a_typo_fails_before_any_data_is_read(setting: dict, message: str, image_folder: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def no_data(*_a, **_k):
        raise AssertionError("data was read before the names were checked")

    monkeypatch.setattr(classifier_module, "load_data", no_data)
    with pytest.raises(ValueError, match=message):
        TransferClassifier(config=user(**setting)).fit(image_folder)


def test_cli_typo_fails_fast_with_the_flag_and_valid_names(capsys, tmp_path: Path, image_folder: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(classifier_module, "load_data", lambda *a, **k: pytest.fail("data was read"))
    start = time.perf_counter()
    code = main(["train", str(image_folder), "--out", str(tmp_path / "run"), "--strategy", "fulll"])
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 1 and seconds < 2.0
    assert "--strategy fulll" in err and "did you mean full?" in err and "valid: full, partial, frozen" in err
    assert not (tmp_path / "run").exists()


def test_a_strategy_typo_on_the_cli_fails_before_torch_is_imported(tmp_path: Path, image_folder: Path) -> None:
    # a fresh interpreter, as a user's shell starts it: the check runs before any heavy import, so it is fast
    code = ("import sys; from shoulders.cli import main; "
            f"rc = main(['train', {str(image_folder)!r}, '--out', {str(tmp_path / 'run')!r}, '--strategy', 'fulll']); "
            "print(rc, 'torch' in sys.modules, 'timm' in sys.modules)")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    seconds = time.perf_counter() - start
    assert proc.stdout.split() == ["1", "False", "False"], proc.stderr
    assert "--strategy fulll" in proc.stderr and "did you mean full?" in proc.stderr
    assert seconds < 2.0  # the whole command, a fresh interpreter included (1.2-1.4 s on a contended 2-core box)


@pytest.mark.parametrize("argv, expected", [
    (["train", "--backbone", "resnet5"], "did you mean resnet50?"),
    (["train", "--augment", "lite"], "did you mean light?"),
    (["train", "--backbone", "resnet18.no_such_tag"], "unknown pretrained tag"),
    (["advise", "--backbones", "lite0,resnt50"], "--backbones resnt50"),
])
def test_a_name_typo_on_the_cli_fails_before_torch_is_imported(argv: list[str], expected: str, tmp_path: Path,
                                                               image_folder: Path) -> None:
    # backbone names come from the snapshot of timm's model list, augmentation names from a torch-free registry
    command, *flags = argv
    args = [command, str(image_folder), *(["--out", str(tmp_path / "run")] if command == "train" else []), *flags]
    code = (f"import sys; from shoulders.cli import main; rc = main({args!r}); "
            "print(rc, sorted({'torch', 'timm', 'torchvision'} & set(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert proc.stdout.split() == ["1", "[]"], proc.stderr
    assert expected in proc.stderr


def test_check_names_accepts_every_registered_name() -> None:
    for name in ("auto", *STRATEGIES):
        check_names(user(strategy=name, augment="light", head_solver="sgd", backbone="lite0"))


# -- the config passed in is the config that runs ----------------------------------------------------------------
def tiny(**kw) -> RunConfig:
    return user(backbone=TINY, pretrained=False, image_size=32, progress=False, device="cpu", **kw)


def test_config_passed_in_is_honoured(image_folder: Path) -> None:
    cfg = tiny(epochs=1)
    cfg.strategy.name, cfg.data.batch_size = "full", 16  # FINDINGS: this trained auto at batch 64
    clf = TransferClassifier(config=cfg).fit(image_folder)
    assert (clf.config_.strategy.name, clf.config_.data.batch_size) == ("full", 16)
    assert clf.strategy_["name"] == clf.plan_.strategy == "full" and clf.advice_ is None
    # 16 px images fine-tuned without augmentation: the whole frame, in what trained and what predicts
    assert clf.config_.data.crop_pct == clf.data_config_["crop_pct"] == 1.0 and clf.config_.data.augment == "none"
    assert any("centre crop: the whole image" in r and "16 px" in r for r in clf.plan_.reasons)
    assert TransferClassifier(config=cfg, epochs=2).build_config().train.epochs == 2  # a keyword overrides it
    assert cfg.train.epochs == 1  # and the caller's config is left alone


def test_plan_recorded_is_the_one_that_trained(capsys, tmp_path: Path, image_folder: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", str(image_folder), "--out", str(out), "--backbone", TINY, "--no-pretrained", "--image-size",
                 "32", "--device", "cpu", "--quiet", "--epochs", "1", "--trainable-blocks", "2"]) == 0
    summary = capsys.readouterr().out
    advice = json.loads((out / "advice.json").read_text())
    config = json.loads((out / CONFIG_NAME).read_text())
    assert advice["plan"]["strategy"] == config["config"]["strategy"]["name"] == config["strategy"]["name"]
    assert advice["plan"]["trainable_blocks"] == config["config"]["strategy"]["trainable_blocks"] == 2
    assert advice["plan"]["epochs"] == config["config"]["train"]["epochs"] == 1
    assert "advised_plan" in advice and advice["plan"]["reasons"] == config["plan"]["reasons"]
    assert "strategy   partial" in summary and "set by the user" in summary


def test_config_json_holds_the_resolved_config_each_value_once(tmp_path: Path, image_folder: Path) -> None:
    TransferClassifier(config=tiny(strategy="frozen")).fit(image_folder, out_dir=tmp_path / "run")
    recorded = json.loads((tmp_path / "run" / CONFIG_NAME).read_text())
    assert not {"backbone", "train", "seed"} & set(recorded)
    assert set(recorded["strategy"]) == {"name", "description", "phases"}
    data, train = recorded["config"]["data"], recorded["config"]["train"]
    assert (data["image_size"], data["augment"], train["device"], train["precision"]) == (32, "none", "cpu", "fp32")
    assert RunConfig.load(tmp_path / "run") == RunConfig.from_dict(recorded["config"])


def _metrics(run: Path) -> tuple[dict, list]:
    metrics = json.loads((run / METRICS_NAME).read_text())
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in read_history(run)]
    return metrics, history


def test_config_json_repeats_the_run(capsys, tmp_path: Path, image_folder: Path) -> None:
    first, again = tmp_path / "first", tmp_path / "again"
    assert main(["train", str(image_folder), "--out", str(first), "--backbone", TINY, "--no-pretrained",
                 "--image-size", "32", "--quiet", "--strategy", "partial", "--epochs", "2", "--lr", "0.01",
                 "--augment", "light", "--seed", "3"]) == 0
    assert main(["train", str(image_folder), "--out", str(again), "--config", str(first / CONFIG_NAME)]) == 0
    assert _metrics(again) == _metrics(first)
    assert RunConfig.load(again) == RunConfig.load(first)
    clf = TransferClassifier(config=RunConfig.load(first)).fit(image_folder)
    assert clf.metrics_ == json.loads((first / METRICS_NAME).read_text())
    capsys.readouterr()


# -- both front doors ------------------------------------------------------------------------------------------------
def test_library_errors_name_parameters_and_the_cli_names_flags() -> None:
    assert flag_message("trainable_blocks=9 is more than the backbone's 5 blocks; use strategy='full'") == \
        "--trainable-blocks 9 is more than the backbone's 5 blocks; use --strategy full"
    assert flag_message("pretrained=False and weights=w.pth") == "--no-pretrained and --weights w.pth"
    assert flag_message("nothing to resume; train without resume=True") == "nothing to resume; train without --resume"
    assert flag_message("use on_bad_image='skip', or device='cpu'") == "use --on-bad-image skip, or --device cpu"
    with pytest.raises(ValueError, match=r"^trainable_blocks=9 is more than"):
        resolve_config(user(strategy="partial", trainable_blocks=9), None, BACKBONE, CPU)


def test_advice_and_plan_reasons_are_two_lists() -> None:
    """The advisor builds its reasons, then the plan from them: appending to one never changes the other."""
    from shoulders.advisor.plan import plan_for_quadrant

    advice_reasons = ["small dataset: median 100 images per class (under 1000)"]
    plan = plan_for_quadrant(4, reasons=advice_reasons)
    assert plan.reasons[0] == advice_reasons[0] and plan.reasons is not advice_reasons
    advice_reasons.append("said only in the advice")
    plan.reasons.append("said only in the plan")
    assert "said only in the advice" not in plan.reasons and "said only in the plan" not in advice_reasons


def test_a_run_folder_from_before_the_validation_cap_repeats_its_uncapped_split(tmp_path) -> None:
    recorded = RunConfig().to_dict()
    assert recorded["data"]["val_max"] == 5000  # the cap a new run draws its split with, recorded in config.json
    del recorded["data"]["val_max"]
    (tmp_path / "config.json").write_text(json.dumps({"format": 1, "config": recorded}))
    assert RunConfig.load(tmp_path).data.val_max is None  # that folder's split was drawn without a cap
    (tmp_path / "alone.json").write_text(json.dumps(recorded))  # a config file of the user's own: the default
    assert RunConfig.load(tmp_path / "alone.json").data.val_max == 5000
