"""``TransferClassifier``: the scikit-learn-style front door (``fit`` / ``predict`` / ``predict_proba``)."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .advisor.plan import Plan
from .planner.budget import parse_budget
from .planner.timing import REFERENCE_SIZE, deadline, say as _say, stretch, timing
from .config import DEFAULT_BACKBONE, RunConfig
from .data import BadImage, BadImageError, DataSplits, ImageDataset, create_transforms
from .data import load_data, make_loader
from .data.images import scan_images
from .data import resolve_data_config
from .explain.gradcam import explain_images, resolve_targets
from .explain.tta import View, resolve_views
from .explain.tta_rule import TTADecision, tta_decision
from .inference import ImagesInput, Inference, as_samples, top_k_rows  # noqa: F401 - serve and pipelines use them
from .models import WeightsInfo, create_backbone, create_transfer_model, imagenet_class_names, resolve_backbone_name
from .resolution import DEFAULT_BATCH_SIZE, BackboneFacts, MachineFacts, check_names, resolve_config
from .run_folder import CHECKPOINT_NAME, MATRIX_NAME, library_versions, load_model_weights, read_run, write_run
from .run_guard import RunLock, agreed_out_dir
from .strategies import STRATEGIES, create_strategy
from .train import fit as fit_model
from .train import barrier, broadcast_object, init_distributed, is_main, resolve_device, resolve_precision
from .train.interrupt import interruptible

TTAArg = bool | str | Sequence[str | View] | None


class TransferClassifier:
    """An image classifier built on a pretrained backbone.

    ``__init__`` only stores the parameters; ``None`` (every keyword's default) keeps ``config``'s value, which
    itself may be unset (``None``: the plan's, the strategy's, the backbone's or the machine's default). ``fit``
    resolves them once (:func:`shoulders.resolution.resolve_config`), trains, and sets the learned attributes,
    which end in an underscore: ``classes_``, ``model_``, ``config_`` (the resolved :class:`RunConfig`),
    ``data_config_``, ``weights_``, ``strategy_``, ``plan_`` (the effective plan), ``advice_``, ``history_``,
    ``metrics_``, ``bad_images_``.

    Args:
        backbone: a name from ``shoulders zoo`` or any timm model name (default ``tf_efficientnet_lite0``).
        strategy: ``auto`` (the default: the advisor measures the data and chooses), ``full``, ``partial`` or
            ``frozen``.
        config: every setting; a keyword that is not ``None`` overrides its field. ``RunConfig.load(run_dir)``
            repeats a run.
    """

    def __init__(self, backbone: str | None = None, strategy: str | None = None, *, weights: str | None = None,
                 pretrained: bool | None = None, epochs: int | None = None, lr: float | None = None,
                 batch_size: int | None = None, image_size: int | None = None, augment: str | None = None,
                 trainable_blocks: float | None = None, train_bn: bool | None = None,
                 val_fraction: float | None = None, val_max: int | None = None, seed: int | None = None,
                 device: str | None = None,
                 progress: bool | None = None, budget: str | float | None = None,
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
        self.val_max = val_max
        self.seed = seed
        self.device = device
        self.progress = progress
        self.budget = budget
        self.config = config

    @classmethod
    def pretrained(cls, backbone: str = DEFAULT_BACKBONE, weights: str | None = None,
                   device: str | None = None) -> "TransferClassifier":
        """The backbone with its own ImageNet head: a ready classifier of the 1000 ImageNet classes, no training."""
        cfg = RunConfig()
        cfg.model.backbone, cfg.model.weights = resolve_backbone_name(backbone), weights
        # "imagenet": nothing was trained here (not a registered strategy, so inference runs at full precision)
        cfg.strategy.name, cfg.train.device = "imagenet", device or "auto"
        cfg.data.batch_size = DEFAULT_BATCH_SIZE
        cfg.data.hflip = True  # ImageNet photos: the weights were trained with flips, so TTA may flip
        model, info = create_backbone(cfg.model.backbone, weights=weights, with_imagenet_head=True)
        model.eval()
        clf = cls(config=cfg)
        clf.classes_, clf.model_, clf.config_, clf.weights_ = imagenet_class_names(), model, cfg, info
        clf.data_config_ = resolve_data_config(model, None, None)
        return clf

    # -- configuration --------------------------------------------------------------------------------------
    def build_config(self) -> RunConfig:
        """The user's :class:`RunConfig`: ``config`` (or the defaults) with every keyword that is not ``None``
        applied; still unresolved (``fit`` resolves it)."""
        keywords = {name: getattr(self, name) for name in _KEYWORDS}
        return (self.config or RunConfig()).override(keywords)

    # -- training -------------------------------------------------------------------------------------------
    def fit(self, X: ImagesInput | DataSplits, y: Sequence[Any] | np.ndarray | None = None, *,
            out_dir: str | Path | None = None, resume: bool = False,
            overwrite: bool = False) -> "TransferClassifier":
        """Trains on an image folder, a CSV file, an array ``X`` with labels ``y``, or prepared ``DataSplits``.

        Every name (strategy, backbone, augmentation, head solver...) is checked before any data is read. With
        ``out_dir`` the run folder is written there (checkpoints each epoch, so ``resume=True`` continues an
        interrupted run). A folder that already holds a run is refused unless ``resume=True`` continues it or
        ``overwrite=True`` replaces it; a replacement is written beside it and swapped in only when it succeeded.
        While a training writes a folder, a lock file beside it refuses a second one. Ctrl-C and SIGTERM raise
        :class:`~shoulders.train.TrainingInterrupted` with the last epoch's checkpoint intact.
        """
        start = time.perf_counter()  # the budget counts from here: loading, advice and probe included
        user = self.build_config()
        check_names(user)
        ctx = init_distributed(user.train.device)  # under torchrun / accelerate: join the group, pin the GPU
        if out_dir is None:
            if resume or overwrite:
                raise ValueError("resume=True and overwrite=True need out_dir= (the run folder)")
            with interruptible():
                return self._fit(user, X, y, ctx, None, resume=False, start=start)
        out = agreed_out_dir(out_dir, resume=resume, overwrite=overwrite)
        succeeded = False
        with (RunLock(out.final) if is_main() else nullcontext()), interruptible():
            try:
                self._fit(user, X, y, ctx, out.work, resume=resume, start=start)
                succeeded = True
            except KeyboardInterrupt as e:  # what the caller needs to say how to go on
                e.run_dir, e.resumable = out.final, not out.replacing and (out.work / CHECKPOINT_NAME).is_file()
                raise
            finally:
                if is_main() and not succeeded:  # a failed or interrupted replacement: the previous run stays
                    out.discard()
            barrier()
            if is_main():
                out.commit()
        return self

    def _fit(self, user: RunConfig, X: Any, y: Any, ctx: Any, run_dir: Path | None, *,
             resume: bool, start: float) -> "TransferClassifier":
        """The training itself, writing into ``run_dir`` (checked and locked by :meth:`fit`); the budget counts
        from ``start`` (a ``time.perf_counter()`` reading)."""
        splits = X if isinstance(X, DataSplits) else load_data(
            X, y, val_fraction=user.data.val_fraction, val_max=user.data.val_max, seed=user.train.seed,
            on_bad_image=user.data.on_bad_image, max_per_class=user.data.max_per_class,
            on_duplicate=user.data.on_duplicate, near_duplicates=user.data.near_duplicates)
        torch.manual_seed(user.train.seed)  # the new head's (and a random backbone's) initialisation
        model, weights = create_transfer_model(resolve_backbone_name(user.model.backbone), len(splits.classes),
                                               weights=user.model.weights, pretrained=user.model.pretrained,
                                               head_hidden=user.model.head_hidden,
                                               head_dropout=user.model.head_dropout)
        advised, advice = self._advise(user, splits, model, start)
        cfg, plan = resolve_config(user, advised, BackboneFacts.of(model, user.model.backbone),
                                   MachineFacts.of(ctx), splits.train.labels, len(splits.classes),
                                   native=_native_median(advised, splits, user.train.seed))
        _say(cfg, plan.recipe and plan.recipe["summary"])
        data_config = resolve_data_config(model, cfg.data.image_size, cfg.data.crop_pct)
        strategy = create_strategy(cfg.strategy)
        identity = {"backbone": cfg.model.backbone, "weights": weights.sha256 or weights.source,
                    "data_config": data_config}
        result = fit_model(model, strategy, splits, cfg, data_config, run_dir=run_dir, resume=resume,
                           cache_identity=identity if cfg.model.pretrained else None,
                           deadline=deadline(start, plan.recipe), stretch=stretch(plan.recipe))
        result.runtime["timing"] = timing(start, plan.recipe, result.runtime.get("replans"), result.history,
                                          result.runtime.get("test_seconds"))
        _say(cfg, result.runtime["timing"]["line"])
        self.weights_, self.plan_ = weights, plan
        self.advice_ = None if advice is None else {**advice, "plan": plan.to_dict(), "advised_plan": advice["plan"]}
        self.strategy_ = {**strategy.describe(), "phases": result.phases}
        self.history_, self.metrics_, self.runtime_ = result.history, result.metrics, result.runtime
        self.split_ = splits.split
        self.bad_images_ = [{"path": b.path, "reason": b.reason} for b in splits.bad_images]
        self.duplicates_ = splits.duplicates.to_dict() if splits.duplicates is not None else None
        self.feature_cache_ = result.cache
        self.classes_, self.model_, self.config_, self.data_config_ = list(splits.classes), model, cfg, data_config
        if run_dir is not None and is_main():  # one process writes the run folder; the others wait for it
            self.save(run_dir)
        return self

    def _advise(self, cfg: RunConfig, splits: DataSplits, model: nn.Module,
                start: float) -> tuple[Plan | None, dict[str, Any] | None]:
        """The advisor's plan with the planner's recipe, under strategy ``auto`` or a budget; ``(None, None)`` for
        an explicit strategy without a budget (its own defaults)."""
        budget = parse_budget(cfg.train.budget)
        if cfg.strategy.name != "auto" and budget is None:
            return None, None
        from .advisor import advise_splits  # the advisor needs the pretrained network, so only when asked
        from .planner.plan_run import planned

        # the planner decides the input size: the advice measures at the calibration's reference size
        size = cfg.data.image_size or REFERENCE_SIZE
        data_config = resolve_data_config(model, size, cfg.data.crop_pct)
        plan, advice = None, None
        if is_main():
            found = advise_splits(splits, model.feature_extractor(), data_config, backbone_name=cfg.model.backbone,
                                  device=cfg.train.device, seed=cfg.train.seed, progress=cfg.train.progress,
                                  weights=cfg.model.weights, pretrained=cfg.model.pretrained)
            plan = planned(found, cfg, splits, model, budget=budget, spent=time.perf_counter() - start,
                           workers=cfg.data.num_workers or 0)
            advice = found.to_dict()
        return broadcast_object((plan, advice))  # every process trains rank 0's plan

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
        precision = resolve_precision(self.config_.train.inference_precision or self.config_.train.precision, device,
                                      fixed_features=_fixed_features(self.config_.strategy.name))
        return Inference(eval_tf, device, precision, self.config_.train.channels_last)

    def predict(self, X: ImagesInput, tta: TTAArg = None) -> np.ndarray:
        """Predicted class names."""
        proba = self.predict_proba(X, tta=tta)
        return np.asarray(self.classes_, dtype=object)[proba.argmax(1)]

    def predict_proba_readable(self, X: ImagesInput, tta: TTAArg = None
                               ) -> tuple[np.ndarray, np.ndarray, list[BadImage]]:
        """Probabilities of the images that can be read, going on past those that cannot.

        Returns:
            (probabilities of the readable images, their indices into ``X``'s samples, the unreadable ones).
        """
        samples = as_samples(X)
        kept = np.arange(len(samples))
        bad = scan_images(samples.paths) if samples.paths is not None else []  # cheap check of every file first
        if bad:
            unreadable = {b.path for b in bad}
            kept = np.array([i for i in kept if samples.paths[i] not in unreadable], dtype=np.int64)  # type: ignore[index]
        while len(kept):
            try:
                return self.predict_proba(samples.subset(kept), tta=tta), kept, bad
            except BadImageError as e:  # passed the check but does not decode (e.g. truncated): leave it out, go on
                bad.append(BadImage(e.path, e.reason))
                kept = np.array([i for i in kept if samples.describe(int(i)) != e.path], dtype=np.int64)
        return np.zeros((0, len(self.classes_)), dtype=np.float32), kept, bad

    def predict_top_k(self, X: ImagesInput, k: int = 3, tta: TTAArg = None) -> list[dict[str, Any]]:
        """Per image, in input order: ``path``, the top ``label`` and ``top_k`` as ``[{"label", "probability"}]``;
        an image that cannot be read gets a row with ``error`` (what failed), ``label`` ``None`` and no ``top_k``."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a whole number of at least 1 (classes per image), got {k!r}")
        samples = as_samples(X)
        proba, kept, bad = self.predict_proba_readable(samples, tta=tta)
        rows = {r["path"]: r for r in top_k_rows(proba, self.classes_, [samples.describe(int(i)) for i in kept],
                                                 int(k))}
        rows.update({b.path: {"path": b.path, "label": None, "top_k": [], "error": b.reason} for b in bad})
        return [rows[samples.describe(i)] for i in range(len(samples))]

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
        # each value once: the resolved settings in "config"; what they led to (weights, preprocessing, phases,
        # the plan's reasons) and what ran them (runtime, versions) beside it
        config = {"config": self.config_.to_dict(), "weights": self.weights_.to_dict(),
                  "data_config": self.data_config_, "strategy": self.strategy_,
                  "plan": {"reasons": self.plan_.reasons, "recipe": self.plan_.recipe}, "classes": self.classes_,
                  "runtime": self.runtime_, "versions": library_versions()}
        run_dir = write_run(path, model=self.model_, config=config, classes=self.classes_, metrics=self.metrics_,
                            split=self.split_, bad_images=self.bad_images_, advice=self.advice_,
                            duplicates=getattr(self, "duplicates_", None))
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
        clf = cls(config=cfg)
        clf.classes_, clf.model_, clf.config_ = list(run["classes"]), model, cfg
        clf.data_config_ = run["config"]["data_config"]
        clf.weights_ = WeightsInfo.from_dict(run["config"]["weights"])
        clf.strategy_, clf.plan_ = run["config"]["strategy"], _recorded_plan(cfg, run["config"]["plan"])
        clf.advice_, clf.metrics_ = run["advice"], run["metrics"] or {}
        clf.history_, clf.runtime_ = [], run["config"].get("runtime", {})
        clf.split_, clf.bad_images_ = run["split"] or {}, []
        return clf

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("this TransferClassifier is not fitted yet: call fit(...) or TransferClassifier.load(run_dir)")


# The keyword arguments of TransferClassifier: each one a setting of RunConfig by its parameter name.
_KEYWORDS = ("backbone", "strategy", "weights", "pretrained", "epochs", "lr", "batch_size", "image_size", "augment",
             "trainable_blocks", "train_bn", "val_fraction", "val_max", "seed", "device", "progress", "budget")


def _fixed_features(strategy: str) -> bool:
    return strategy in STRATEGIES and STRATEGIES.get(strategy).uses_feature_cache


def _native_median(plan: Plan | None, splits: DataSplits, seed: int) -> float:
    """The training images' median shorter side: the planner's measurement, else measured here (array shapes,
    or a sample of file headers)."""
    from .planner.data_facts import native_size

    recorded = ((plan.recipe if plan is not None else None) or {}).get("native_size")
    return float(recorded["median"]) if recorded else native_size(splits.train, seed=seed).median


def _recorded_plan(cfg: RunConfig, recorded: dict[str, Any]) -> Plan:
    """The effective plan of a run folder: its numbers are the resolved config's, its reasons were recorded (a
    folder written before the plan was recorded by its reasons alone holds the whole plan)."""
    if set(recorded) - {"recipe"} != {"reasons"}:
        return Plan(**recorded)
    s, t = cfg.strategy, cfg.train
    return Plan(strategy=s.name, epochs=t.epochs, lr=t.lr, augment=cfg.data.augment,
                trainable_blocks=s.trainable_blocks, head_epochs=s.head_epochs, backbone_lr_mult=t.backbone_lr_mult,
                reasons=list(recorded["reasons"]), image_size=cfg.data.image_size, head_init=s.head_init or "default",
                label_smoothing=t.label_smoothing or 0.0, recipe=recorded.get("recipe"))

