"""``TransferClassifier``: the scikit-learn-style front door (``fit`` / ``predict`` / ``predict_proba``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from .advisor.plan import Plan, apply_plan, default_plan
from .config import DEFAULT_BACKBONE, DataConfig, ModelConfig, RunConfig, StrategyConfig, TrainConfig
from .data import DataSplits, ImageDataset, Samples, collect_paths, create_transforms, load_data, make_loader
from .config import save_json
from .data import resolve_data_config, samples_from_arrays
from .data.duplicates import DUPLICATES_NAME
from .explain.gradcam import explain_images, resolve_targets
from .explain.tta import TTADecision, TTAModel, View, merge_views, resolve_views, tta_decision
from .models import WeightsInfo, create_backbone, create_transfer_model, imagenet_class_names, resolve_backbone_name
from .run_folder import MATRIX_NAME, library_versions, load_model_weights, read_run, write_run
from .strategies import STRATEGIES, create_strategy
from .train import fit as fit_model
from .train import barrier, broadcast_object, init_distributed, is_main, predict_logits, resolve_device
from .train import Precision, resolve_precision

ImagesInput = str | Path | Sequence[str | Path] | np.ndarray | Samples
TTAArg = bool | str | Sequence[str | View] | None


class TransferClassifier:
    """An image classifier built on a pretrained backbone.

    ``__init__`` only stores the parameters (``None`` = the plan's or the backbone's default); ``fit`` resolves
    them, trains, and sets the learned attributes, which end in an underscore: ``classes_``, ``model_``,
    ``config_`` (the resolved :class:`RunConfig`), ``data_config_``, ``weights_``, ``strategy_``, ``plan_``,
    ``advice_``, ``history_``, ``metrics_``, ``bad_images_``.

    Args:
        backbone: a name from ``shoulders zoo`` or any timm model name.
        strategy: ``auto`` (the advisor measures the data and chooses), ``full``, ``partial`` or ``frozen``.
        config: full control over every setting; the keyword arguments above override its fields.
    """

    def __init__(self, backbone: str = DEFAULT_BACKBONE, strategy: str = "auto", *, weights: str | None = None,
                 pretrained: bool = True, epochs: int | None = None, lr: float | None = None,
                 batch_size: int = 64, image_size: int | None = None, augment: str | None = None,
                 trainable_blocks: float | None = None, train_bn: bool = False, val_fraction: float = 0.2,
                 seed: int = 0, device: str = "auto", progress: bool = True,
                 config: RunConfig | None = None) -> None:
        self.backbone = backbone
        self.strategy = strategy
        self.weights = weights
        self.pretrained = pretrained
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.image_size = image_size
        self.augment = augment
        self.trainable_blocks = trainable_blocks
        self.train_bn = train_bn
        self.val_fraction = val_fraction
        self.seed = seed
        self.device = device
        self.progress = progress
        self.config = config

    @classmethod
    def from_config(cls, config: RunConfig) -> "TransferClassifier":
        """A classifier whose every setting comes from ``config`` (what ``shoulders train`` builds)."""
        return cls(backbone=config.model.backbone, strategy=config.strategy.name, weights=config.model.weights,
                   pretrained=config.model.pretrained, batch_size=config.data.batch_size,
                   train_bn=config.strategy.train_bn, val_fraction=config.data.val_fraction, seed=config.train.seed,
                   device=config.train.device, progress=config.train.progress, config=config)

    @classmethod
    def pretrained(cls, backbone: str = DEFAULT_BACKBONE, weights: str | None = None,
                   device: str | None = None) -> "TransferClassifier":
        """The backbone with its own ImageNet head: a ready classifier of the 1000 ImageNet classes, no training."""
        cfg = RunConfig()
        cfg.model.backbone, cfg.model.weights = resolve_backbone_name(backbone), weights
        # "imagenet": nothing was trained here (not a registered strategy, so inference runs at full precision)
        cfg.strategy.name, cfg.train.device = "imagenet", device or "auto"
        cfg.data.hflip = True  # ImageNet photos: the weights were trained with flips, so TTA may flip
        model, info = create_backbone(cfg.model.backbone, weights=weights, with_imagenet_head=True)
        model.eval()
        clf = cls(backbone=cfg.model.backbone, strategy="imagenet", weights=weights, config=cfg, device=cfg.train.device)
        clf.classes_, clf.model_, clf.config_, clf.weights_ = imagenet_class_names(), model, cfg, info
        clf.data_config_ = resolve_data_config(model, None, None)
        return clf

    # -- configuration --------------------------------------------------------------------------------------
    def build_config(self) -> RunConfig:
        """The unresolved :class:`RunConfig` these parameters describe (``config`` with the keywords applied)."""
        base = self.config or RunConfig(DataConfig(), ModelConfig(), StrategyConfig(), TrainConfig())
        cfg = RunConfig.from_dict(base.to_dict())
        cfg.model.backbone, cfg.model.weights, cfg.model.pretrained = self.backbone, self.weights, self.pretrained
        cfg.strategy.name, cfg.strategy.train_bn = self.strategy, self.train_bn
        cfg.strategy.trainable_blocks = _override(cfg.strategy.trainable_blocks, self.trainable_blocks)
        cfg.train.epochs = _override(cfg.train.epochs, self.epochs)
        cfg.train.lr = _override(cfg.train.lr, self.lr)
        cfg.train.seed, cfg.train.device, cfg.train.progress = self.seed, self.device, self.progress
        cfg.data.batch_size, cfg.data.val_fraction = self.batch_size, self.val_fraction
        cfg.data.image_size = _override(cfg.data.image_size, self.image_size)
        cfg.data.augment = _override(cfg.data.augment, self.augment)
        return cfg

    # -- training -------------------------------------------------------------------------------------------
    def fit(self, X: ImagesInput | DataSplits, y: Sequence[Any] | np.ndarray | None = None, *,
            out_dir: str | Path | None = None, resume: bool = False) -> "TransferClassifier":
        """Trains on an image folder, a CSV file, an array ``X`` with labels ``y``, or prepared ``DataSplits``.

        With ``out_dir`` the run folder is written there (checkpoints each epoch, so ``resume=True`` continues
        an interrupted run).
        """
        cfg = self.build_config()
        cfg.model.backbone = resolve_backbone_name(cfg.model.backbone)
        init_distributed(cfg.train.device)  # under torchrun / accelerate: join the group, pin this process's GPU
        splits = X if isinstance(X, DataSplits) else load_data(
            X, y, val_fraction=cfg.data.val_fraction, seed=cfg.train.seed, on_bad_image=cfg.data.on_bad_image,
            max_per_class=cfg.data.max_per_class, on_duplicate=cfg.data.on_duplicate,
            near_duplicates=cfg.data.near_duplicates)
        torch.manual_seed(cfg.train.seed)  # the new head's (and a random backbone's) initialisation
        model, weights = create_transfer_model(cfg.model.backbone, len(splits.classes), weights=cfg.model.weights,
                                               pretrained=cfg.model.pretrained, head_hidden=cfg.model.head_hidden,
                                               head_dropout=cfg.model.head_dropout)
        data_config = resolve_data_config(model.backbone, cfg.data.image_size, cfg.data.crop_pct)
        plan, advice = self._plan(cfg, splits, model, data_config)
        cfg = apply_plan(cfg, plan)
        strategy = create_strategy(cfg.strategy)
        identity = {"backbone": cfg.model.backbone, "weights": weights.sha256 or weights.source,
                    "data_config": data_config}
        result = fit_model(model, strategy, splits, cfg, data_config, run_dir=_mkdir(out_dir), resume=resume,
                           cache_identity=identity if cfg.model.pretrained else None)
        self.classes_, self.model_, self.config_, self.data_config_ = list(splits.classes), model, cfg, data_config
        self.weights_, self.plan_, self.advice_ = weights, plan, advice
        self.strategy_ = {**strategy.describe(), "phases": result.phases}
        self.history_, self.metrics_, self.runtime_ = result.history, result.metrics, result.runtime
        self.split_ = splits.split
        self.bad_images_ = [{"path": b.path, "reason": b.reason} for b in splits.bad_images]
        self.duplicates_ = splits.duplicates.to_dict() if splits.duplicates is not None else None
        self.feature_cache_ = result.cache
        if out_dir is not None and is_main():  # one process writes the run folder; the others wait for it
            self.save(out_dir)
        barrier()
        return self

    def _plan(self, cfg: RunConfig, splits: DataSplits, model: nn.Module,
              data_config: dict[str, Any]) -> tuple[Plan, dict[str, Any] | None]:
        if cfg.strategy.name != "auto":
            return default_plan(cfg.strategy.name), None
        from .advisor import advise_splits  # the advisor needs the pretrained network, so only when asked

        advice = advise_splits(splits, model.backbone, data_config, backbone_name=cfg.model.backbone,
                               device=cfg.train.device, seed=cfg.train.seed,
                               progress=cfg.train.progress and is_main(), weights=cfg.model.weights,
                               pretrained=cfg.model.pretrained)
        return broadcast_object((advice.plan, advice.to_dict()))  # every process trains rank 0's plan

    # -- prediction -----------------------------------------------------------------------------------------
    def predict_proba(self, X: ImagesInput, tta: TTAArg = None) -> np.ndarray:
        """Class probabilities, shape (N, len(classes_)), in the order of ``X`` (paths sorted for directories).

        ``tta``: ``None`` follows the run's rule (:meth:`tta_decision`), ``True`` averages the views that suit
        this run (flips only where it trained with flips), ``False`` is plain; or view names (``list_views()``).
        """
        inference = self.inference()
        views = self.tta_views(tta)
        samples = as_samples(X)
        # the weights in the layout the input arrives in (a loaded run folder's are NCHW): no reorder per batch
        self.model_.to(inference.device, memory_format=inference.memory_format)
        loader = make_loader(ImageDataset(samples, inference.transform), self.config_.data.batch_size, shuffle=False,
                             device=inference.device, num_workers=self.config_.data.num_workers)
        return inference.probabilities(self.model_, loader, views=views)

    def inference(self) -> "Inference":
        """How this classifier predicts: its eval transform, device, precision and memory layout."""
        self._check_fitted()
        _, eval_tf = create_transforms(self.data_config_)
        device = resolve_device(self.config_.train.device)
        fixed = self.config_.strategy.name in STRATEGIES and STRATEGIES.get(self.config_.strategy.name).uses_feature_cache
        precision = resolve_precision(self.config_.train.precision, device, fixed_features=fixed)
        return Inference(eval_tf, device, precision, self.config_.train.channels_last)

    def predict(self, X: ImagesInput, tta: TTAArg = None) -> np.ndarray:
        """Predicted class names."""
        proba = self.predict_proba(X, tta=tta)
        return np.asarray(self.classes_, dtype=object)[proba.argmax(1)]

    def predict_top_k(self, X: ImagesInput, k: int = 3, tta: TTAArg = None) -> list[dict[str, Any]]:
        """Per image: ``path``, the top ``label`` and ``top_k`` as ``[{"label", "probability"}]``."""
        samples = as_samples(X)
        proba = self.predict_proba(samples, tta=tta)
        return top_k_rows(proba, self.classes_, [samples.describe(i) for i in range(len(samples))], k)

    def score(self, X: ImagesInput, y: Sequence[Any], tta: TTAArg = None) -> float:
        """Accuracy on ``X`` against labels ``y`` (class names)."""
        return float(np.mean(self.predict(X, tta=tta) == np.asarray(y, dtype=object)))

    def tta_views(self, tta: TTAArg = None) -> list[View] | None:
        """The test-time views ``tta=`` asks for (``None``: the run's rule); ``None`` means plain prediction."""
        return resolve_views(self.tta_decision().enabled if tta is None else tta, self.config_.data.hflip)

    def tta_decision(self) -> TTADecision:
        """Whether ``tta=None`` predicts with test-time augmentation for this run, with the reason and cost."""
        self._check_fitted()
        return tta_decision(self.config_.data.hflip)

    def explain(self, X: ImagesInput, target: int | str | Sequence[int | str] | None = None, *,
                method: str = "gradcam") -> np.ndarray | list[np.ndarray]:
        """Class-activation heatmaps (Grad-CAM by default; needs ``pip install "shoulders[explain]"``).

        Args:
            X: images, as for :meth:`predict`.
            target: the class to explain (name or index, one for all or one per image); ``None``: each image's
                top class.
            method: a name from ``shoulders.explain.CAM_METHODS``.

        Returns:
            One float32 map per image with the image's own size (height, width), values in [0, 1]: an array
            (N, H, W) when all images share a size, else a list.
        """
        self._check_fitted()
        samples = as_samples(X)
        images = [samples.load(i) for i in range(len(samples))]
        _, eval_tf = create_transforms(self.data_config_)
        self.model_.to(resolve_device(self.config_.train.device))
        maps = explain_images(self.model_, images, eval_tf, self.data_config_,
                              resolve_targets(target, self.classes_, len(images)), method=method)
        return np.stack(maps) if len({m.shape for m in maps}) == 1 else maps

    # -- persistence ----------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Writes the run folder (see ``shoulders.run_folder``)."""
        self._check_fitted()
        config = {"config": self.config_.to_dict(), "backbone": self.config_.model.backbone,
                  "weights": self.weights_.to_dict(), "data_config": self.data_config_, "strategy": self.strategy_,
                  "plan": self.plan_.to_dict(), "classes": self.classes_, "num_classes": len(self.classes_),
                  "train": vars(self.config_.train), "seed": self.config_.train.seed, "runtime": self.runtime_,
                  "versions": library_versions()}
        run_dir = write_run(path, model=self.model_, config=config, classes=self.classes_, metrics=self.metrics_,
                            split=self.split_, bad_images=self.bad_images_, advice=self.advice_)
        if getattr(self, "duplicates_", None) and (self.duplicates_["exact"] or self.duplicates_["near"]):
            save_json(self.duplicates_, run_dir / DUPLICATES_NAME)
        if self.advice_ is not None:
            from .advisor.matrix import save_advice_matrix  # matplotlib only when there is advice to draw

            save_advice_matrix(self.advice_, run_dir / MATRIX_NAME)
        return run_dir

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "TransferClassifier":
        """Rebuilds a fitted classifier from a run folder alone, offline (no weights download, no pickle)."""
        run = read_run(path)
        cfg = RunConfig.from_dict(run["config"]["config"])
        if device is not None:
            cfg.train.device = device
        model, _ = create_transfer_model(cfg.model.backbone, len(run["classes"]), pretrained=False,
                                         head_hidden=cfg.model.head_hidden, head_dropout=cfg.model.head_dropout)
        load_model_weights(path, model)
        model.eval()
        clf = cls(backbone=cfg.model.backbone, strategy=cfg.strategy.name, config=cfg, seed=cfg.train.seed,
                  device=cfg.train.device)
        clf.classes_, clf.model_, clf.config_ = list(run["classes"]), model, cfg
        clf.data_config_ = run["config"]["data_config"]
        clf.weights_ = WeightsInfo.from_dict(run["config"]["weights"])
        clf.strategy_, clf.plan_ = run["config"]["strategy"], Plan(**run["config"]["plan"])
        clf.advice_, clf.metrics_ = run["advice"], run["metrics"] or {}
        clf.history_, clf.runtime_ = [], run["config"].get("runtime", {})
        clf.split_, clf.bad_images_ = run["split"] or {}, []
        return clf

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("this TransferClassifier is not fitted yet: call fit(...) or TransferClassifier.load(run_dir)")


@dataclass(frozen=True)
class Inference:
    """How a fitted classifier predicts (``TransferClassifier.inference()``): ``predict_proba`` runs through it,
    and so does ``shoulders serve``, so that a served prediction is the library's prediction."""

    transform: Callable[[Image.Image], torch.Tensor]  # RGB image → normalised tensor (the eval transform)
    device: torch.device
    precision: Precision  # its ``inference`` dtype is the one used here (bf16 for frozen features on some CPUs)
    channels_last: bool

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def probabilities(self, model: nn.Module, batches: Iterable[tuple[torch.Tensor, Any]], *,
                      views: Sequence[View] | None = None) -> np.ndarray:
        """Softmax of ``model`` over ``(images, targets)`` batches (a DataLoader, or a list of one batch); with
        ``views``, the average over those test-time views."""
        logits, _ = predict_logits(model if views is None else TTAModel(model, views), batches, self.device,
                                   precision=self.precision, channels_last=self.channels_last)
        if views is not None:
            return merge_views(logits)
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()


def top_k_rows(proba: np.ndarray, classes: Sequence[str], names: Sequence[str], k: int) -> list[dict[str, Any]]:
    """The rows of ``predict --json``: per image its ``path`` (``names[i]``), top ``label`` and ``top_k``."""
    k = min(k, proba.shape[1])
    rows = []
    for i, top in enumerate(np.argsort(-proba, axis=1)[:, :k]):
        tops = [{"label": classes[j], "probability": float(proba[i, j])} for j in top]
        rows.append({"path": names[i], "label": tops[0]["label"], "top_k": tops})
    return rows


def as_samples(X: ImagesInput) -> Samples:
    """Prediction inputs → ``Samples``: a file, a directory, a glob, a list of those, or an image array."""
    if isinstance(X, Samples):
        return X
    if isinstance(X, np.ndarray):
        return samples_from_arrays(X, np.zeros(len(X), dtype=np.int64))[0]
    inputs = [X] if isinstance(X, (str, Path)) else list(X)
    paths = collect_paths([str(p) for p in inputs])
    return Samples(["?"], np.zeros(len(paths), dtype=np.int64), paths=paths)


def _override(current: Any, value: Any) -> Any:
    return current if value is None else value


def _mkdir(path: str | Path | None) -> Path | None:
    if path is None:
        return None
    Path(path).mkdir(parents=True, exist_ok=True)
    return Path(path)
