"""Trainer: feature cache, resume equivalence, NaN stop, determinism, the convex head, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

from shoulders import TransferClassifier
from shoulders.models import create_backbone
from shoulders.run_folder import read_history
from shoulders.train import (Precision, TrainingDivergedError, fit_linear_head, load_checkpoint, save_checkpoint,
                             train_one_epoch)
from shoulders.train import finetune, frozen
from shoulders.train.state import TrainingState, history_row, record_epoch

from conftest import TINY, colour_images


def tiny_clf(strategy: str, head_epochs: int | None = None, patience: int | None = None,
             head_solver: str | None = None, **kw) -> TransferClassifier:
    clf = TransferClassifier(backbone=TINY, strategy=strategy, pretrained=False, image_size=32, progress=False,
                             batch_size=8, **kw)
    cfg = clf.build_config()
    cfg.strategy.head_epochs, cfg.train.patience, cfg.strategy.head_solver = head_epochs, patience, head_solver
    clf.config = cfg
    return clf


def count_backbone_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts forward passes of every backbone built from now on."""
    calls: list[int] = []
    original = frozen.extract_features

    def counting(backbone: nn.Module, *args, **kwargs):
        handle = backbone.register_forward_hook(lambda *_: calls.append(1))
        try:
            return original(backbone, *args, **kwargs)
        finally:
            handle.remove()

    monkeypatch.setattr(frozen, "extract_features", counting)
    return calls


def test_frozen_features_are_cached_on_disk_and_reused(tmp_path: Path, colour_arrays,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # pretrained=False disables the cache (no weights hash to key on), so use a fixed random init saved to a file
    x, y, _ = colour_arrays
    calls = count_backbone_calls(monkeypatch)
    torch.manual_seed(0)
    backbone, _ = create_backbone(TINY, pretrained=False)
    path = tmp_path / "tiny.pth"
    torch.save(backbone.state_dict(), path)
    first = TransferClassifier(backbone=TINY, strategy="frozen", weights=str(path), image_size=32,
                               progress=False).fit(x, y)
    assert calls and first.feature_cache_ == {"hits": 0, "misses": 2}
    calls.clear()
    second = TransferClassifier(backbone=TINY, strategy="frozen", weights=str(path), image_size=32,
                                progress=False).fit(x, y)
    assert calls == []  # the backbone's forward was never called
    assert second.feature_cache_ == {"hits": 2, "misses": 0}
    assert second.metrics_["val_accuracy"] == first.metrics_["val_accuracy"]
    # a changed image is a different key: recomputed, never served stale
    x2 = x.copy()
    x2[0] = 255 - x2[0]
    third = TransferClassifier(backbone=TINY, strategy="frozen", weights=str(path), image_size=32,
                               progress=False).fit(x2, y)
    assert third.feature_cache_["misses"] >= 1


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path: Path, colour_arrays,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    x, y, _ = colour_arrays
    whole = tiny_clf("full", epochs=3, head_epochs=1).fit(x, y, out_dir=tmp_path / "whole")
    original = finetune._run_epoch
    done = []

    def interrupted(*args, **kwargs):
        if len(done) == 2:  # killed during the third epoch (the second of the fine-tuning phase)
            raise KeyboardInterrupt
        done.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(finetune, "_run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tiny_clf("full", epochs=3, head_epochs=1).fit(x, y, out_dir=tmp_path / "cut")
    assert len(read_history(tmp_path / "cut")) == 2
    monkeypatch.setattr(finetune, "_run_epoch", original)
    resumed = tiny_clf("full", epochs=3, head_epochs=1).fit(x, y, out_dir=tmp_path / "cut", resume=True)
    assert [r["phase"] for r in resumed.history_] == ["head", "finetune", "finetune"]
    assert resumed.metrics_ == whole.metrics_
    for (k, a), b in zip(whole.model_.state_dict().items(), resumed.model_.state_dict().values()):
        assert torch.equal(a, b), k


def test_same_seed_same_metrics(colour_arrays) -> None:
    x, y, _ = colour_arrays
    a = tiny_clf("partial", epochs=2, trainable_blocks=2).fit(x, y)
    b = tiny_clf("partial", epochs=2, trainable_blocks=2).fit(x, y)
    assert a.history_ == [dict(r, seconds=a.history_[i]["seconds"]) for i, r in enumerate(b.history_)]


def test_nan_loss_stops_with_epoch_and_learning_rate() -> None:
    model = nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loader = [(torch.randn(3, 4), torch.tensor([0, 1, 0]))]
    with pytest.raises(TrainingDivergedError, match=r"epoch 4, step 1.*learning rate \(0.5.*try lr=0.05"):
        train_one_epoch(model, nn.CrossEntropyLoss(), optimizer, loader, torch.device("cpu"), epoch=3,
                        precision=Precision("fp32", "fp32"), progress=False)


def test_progress_bars_stay_out_of_output_that_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    loader = [(torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 0])) for _ in range(3)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    stats = train_one_epoch(model, nn.CrossEntropyLoss(), optimizer, loader, torch.device("cpu"), epoch=0,
                            precision=Precision("fp32", "fp32"), progress=True)
    assert stats["images"] == 12
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "batch" not in captured.err  # captured streams are not terminals


def test_divergence_through_fit_is_a_clear_error(colour_arrays) -> None:
    x, y, _ = colour_arrays
    with pytest.raises(TrainingDivergedError, match="learning rate"):
        tiny_clf("full", epochs=2, lr=1e12).fit(x, y)


def test_convex_head_equals_a_standardised_logistic_regression() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 6)).astype(np.float32) * 5 + 3
    y = (x[:, 0] + x[:, 1] > 6).astype(np.int64) + (x[:, 2] > 3)
    head = nn.Linear(6, 3)
    rows = fit_linear_head(head, x[:60], y[:60], x[60:], y[60:], num_classes=3)
    best_c = max(rows, key=lambda r: (r["val_accuracy"], -r["val_loss"]))["C"]
    scaler = StandardScaler().fit(x[:60])
    ref = LogisticRegression(C=best_c, tol=1e-10, max_iter=10000).fit(scaler.transform(x[:60]), y[:60])
    with torch.no_grad():
        ours = torch.softmax(head(torch.from_numpy(x)), 1).numpy()
    np.testing.assert_allclose(ours, ref.predict_proba(scaler.transform(x)), atol=1e-3)  # float32, gradient 1e-5


def test_convex_head_binary_and_absent_class() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) * 2  # classes 0 and 2 only; class 1 never seen
    head = nn.Linear(3, 3)
    fit_linear_head(head, x, y, x, y, num_classes=3)
    with torch.no_grad():
        pred = head(torch.from_numpy(x)).argmax(1).numpy()
    assert set(pred) <= {0, 2} and (pred == y).mean() > 0.9


def test_frozen_with_augmentation_caches_several_views(colour_arrays) -> None:
    x, y, _ = colour_arrays
    clf = tiny_clf("frozen", augment="light").fit(x, y)
    assert clf.runtime_["feature_views"] == 4


def test_head_sgd_solver(colour_arrays) -> None:
    x, y, _ = colour_arrays
    clf = tiny_clf("frozen", epochs=5, head_solver="sgd", lr=0.05).fit(x, y)
    assert clf.metrics_["head_solver"] == "sgd"
    assert [r["epoch"] for r in clf.history_] == [1, 2, 3, 4, 5]
    assert clf.history_[-1]["train_loss"] < clf.history_[0]["train_loss"]


@pytest.mark.parametrize("patience, stops_after", [(2, 4), (None, None)])
def test_early_stopping_counts_epochs_without_better_val_loss(patience: int | None, stops_after: int | None) -> None:
    model, state = nn.Linear(2, 2), TrainingState()
    train = {"loss": 1.0, "accuracy": 0.5, "seconds": 0.0}
    for i, val_loss in enumerate([1.0, 0.8, 0.9, 0.85, 0.7]):
        val = {"loss": val_loss, "accuracy": 0.5, "seconds": 0.0}
        record_epoch(state, model, history_row(i + 1, "finetune", 0.1, train, val), val, patience)
        if state.stopped:
            break
    assert (i + 1 if state.stopped else None) == stops_after
    # equal accuracies: the latest epoch's weights are kept (the split cannot tell them apart; see keep_if_best)
    assert state.best.epoch == (4 if stops_after else 5)
    assert [r["epoch"] for r in state.history] == list(range(1, i + 2)) and state.epoch == i + 1


def test_every_head_solver_the_frozen_strategy_names_is_implemented() -> None:
    from shoulders.strategies import FrozenStrategy

    assert set(frozen.HEAD_SOLVERS) == set(FrozenStrategy.head_solvers)


def test_the_checkpoint_is_the_training_state(tmp_path: Path, colour_arrays) -> None:
    x, y, _ = colour_arrays
    clf = tiny_clf("full", epochs=2, head_epochs=1).fit(x, y, out_dir=tmp_path / "run")
    state = TrainingState.resume(tmp_path / "run" / "checkpoint.pt", clf.model_)
    assert (state.epoch, state.phase_index, state.phase_epoch) == (2, 1, 1)
    assert [r["epoch"] for r in state.history] == [1, 2] and state.history == [
        dict(r, seconds=state.history[i]["seconds"]) for i, r in enumerate(clf.history_)]
    assert state.best.epoch == clf.metrics_["best_epoch"] and state.optimizer is not None


def test_checkpoint_is_atomic_and_a_damaged_one_is_a_clear_error(tmp_path: Path) -> None:
    path = save_checkpoint({"a": torch.ones(2), "epoch": 3}, tmp_path / "ckpt.pt")
    assert not (tmp_path / "ckpt.pt.tmp").exists()
    assert load_checkpoint(path)["epoch"] == 3
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match="damaged"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        load_checkpoint(tmp_path / "none.pt")


def test_resume_without_checkpoint_says_so(tmp_path: Path, colour_arrays) -> None:
    x, y, _ = colour_arrays
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        tiny_clf("full", epochs=1).fit(x, y, out_dir=tmp_path / "fresh", resume=True)


def test_frozen_resume_says_it_starts_again_and_still_fits(tmp_path: Path, colour_arrays,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    x, y, _ = colour_arrays
    clf = tiny_clf("frozen").fit(x, y, out_dir=tmp_path / "run", resume=True)
    assert "no epochs to continue" in capsys.readouterr().err
    assert (tmp_path / "run" / "model.safetensors").exists() and len(clf.predict(x[:2])) == 2


def test_more_data_same_classes_is_learnt() -> None:
    x, y, _ = colour_images(20, size=16, seed=3)
    clf = tiny_clf("full", epochs=4, lr=1e-2).fit(x, y)
    assert clf.metrics_["val_accuracy"] >= 0.8


def test_predict_logits_fills_one_array_and_keeps_order() -> None:
    from shoulders.train import predict_logits

    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(10, 4), torch.arange(10)
    with torch.no_grad():
        ref = model(x).numpy()
    fp32 = Precision(train="fp32", inference="fp32")
    dataset = torch.utils.data.TensorDataset(x, y)
    for loader, n in ((torch.utils.data.DataLoader(dataset, batch_size=3), 10),  # known length: preallocated
                      ([(x[:5], y[:5]), (x[5:], y[5:])], 10),  # a plain list of batches
                      (torch.utils.data.DataLoader(dataset, batch_size=3, drop_last=True), 9)):
        out, targets = predict_logits(model, loader, torch.device("cpu"), precision=fp32)
        assert out.dtype == np.float32 and out.shape == (n, 3)
        np.testing.assert_allclose(out, ref[:n], atol=1e-6)
        assert targets.tolist() == list(range(n))


def _kept_epoch(curve: list[float], images: int) -> int:
    """The epoch a run keeps for this validation-accuracy curve (a tiny model; each epoch's weights marked)."""
    from shoulders.train.state import keep_if_best

    model, state = nn.Linear(1, 1), TrainingState()
    for epoch, accuracy in enumerate(curve, 1):
        nn.init.constant_(model.weight, float(epoch))
        keep_if_best(state, epoch, {"accuracy": accuracy, "loss": 1.0, "images": images}, model)
    assert state.best_weights["weight"].item() == state.best.epoch  # the kept weights are that epoch's
    return state.best.epoch


def test_the_kept_epoch_is_the_latest_the_validation_split_cannot_tell_from_the_best():
    """Fashion-MNIST 10/class, 20 validation images (benchmarks/checkpoint_rule.py): 18/20 at epoch 4, 14/20 from
    epoch 27 on, while the test accuracy rose from 70.0 to 77.3 % at the end — the end is kept; on a split large
    enough to see it, a real drop keeps the earlier epoch; without a validation split the last epoch is kept."""
    small = [0.40, 0.35, 0.55, 0.90, 0.70, 0.75] + [0.70] * 54
    assert _kept_epoch(small, 20) == 60
    assert _kept_epoch([0.80, 0.90, 0.91, 0.85, 0.84], 12_000) == 3  # 6 points below the best on 12 000 images
    assert _kept_epoch([0.80, 0.90, 0.91, 0.909, 0.908], 12_000) == 5  # within the split's noise: the later one
    assert _kept_epoch([1.0, 1.0, 0.995], 200) == 3  # one image of 200 below a perfect score: noise
    assert _kept_epoch([float("nan")] * 3, 0) == 3
