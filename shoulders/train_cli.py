"""``shoulders train``: its flags, how they become a :class:`~shoulders.config.RunConfig`, and what it prints.

Every setting flag defaults to ``None`` ("not given"): the ``--config`` file's value wins over nothing, a flag
given wins over the file, and the resolution step fills whatever is still unset. Each flag's ``dest`` is the
library's parameter name (``shoulders.config.PARAMETERS``), so that a library error (``lr=0``) can be said in
flags (``--lr 0``) by :func:`flag_message`.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from . import cli_types as T
from .config import DEFAULT_BACKBONE


def train_args(p: argparse.ArgumentParser) -> None:
    from .strategies import STRATEGIES, FrozenStrategy

    # Every setting flag defaults to None ("not given"): the --config file's value, else the resolution step's
    # default. Each flag's dest is the library's parameter name (shoulders.config.PARAMETERS).
    defaults = ", ".join(f"{n} {c.default_epochs}" for n, c in ((n, STRATEGIES.get(n)) for n in STRATEGIES))
    p.add_argument("data", help="image folder (DATA/<class>/*, optionally with train/ val/ test/) or a CSV path,label")
    p.add_argument("--out", required=True, help="run folder to write (model, config, metrics, history)")
    p.add_argument("--config", metavar="JSON", help="start from this config: a run folder's config.json repeats "
                   "that run; flags given here override it")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from --out's checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out: the new run is written beside it and swapped in only when it "
                        "succeeds (without this, an existing run folder is refused)")
    p.add_argument("--strategy", help=f"auto (measure and choose; the default) | {' | '.join(STRATEGIES)}")
    p.add_argument("--backbone", help=f"see `shoulders zoo` (default {DEFAULT_BACKBONE})")
    p.add_argument("--weights", help="weights file (safetensors or .pth state dict) instead of the bundled/hub ones")
    p.add_argument("--no-pretrained", dest="pretrained", action="store_const", const=False,
                   help="random initialisation (a from-scratch baseline)")
    p.add_argument("--budget", type=T.budget, help="wall time for the whole run, advice included (90s, 10m, 1h30m): the "
                   "plan fits input size, epochs, strategy and depth in it; default: near the plateau, at most 10m")
    p.add_argument("--head-init", help="full/partial: default | probe (LP-FT: start from the linear probe; "
                   "default: the plan's)")
    p.add_argument("--epochs", type=T.POSITIVE_INT, help=f"training epochs (default: the plan's; the strategies' own: {defaults})")
    p.add_argument("--max-steps", type=T.POSITIVE_INT, help="fine-tuning: stop after N optimizer steps in all, the "
                   "schedule laid over them (default: the plan's, which ends within an epoch where that fills the budget)")
    p.add_argument("--lr", type=T.positive_float(), help="learning rate of the new head (default: the plan's, "
                   f"{STRATEGIES.get('full').default_lr:g})")
    p.add_argument("--backbone-lr-mult", type=T.NON_NEGATIVE_FLOAT,
                   help="pretrained layers' rate = lr × this (default: the plan's: "
                        f"{STRATEGIES.get('full').default_backbone_lr_mult:g}, or 1.0 for data unlike ImageNet)")
    p.add_argument("--layer-decay", type=T.UP_TO_ONE, help="extra rate factor per block from the top (e.g. 0.8)")
    p.add_argument("--trainable-blocks", type=T.trainable_blocks, help="partial: top N blocks train (or a fraction 0-1; default "
                   f"{STRATEGIES.get('partial').default_depth}, or the advisor's measured depth)")
    p.add_argument("--head-epochs", type=T.NON_NEGATIVE_INT, help="full/partial: head-only epochs before unfreezing")
    p.add_argument("--head-hidden", type=T.POSITIVE_INT, help="hidden units of a 2-layer head (default: a linear head)")
    p.add_argument("--head-dropout", type=T.BELOW_ONE, help="dropout in the head")
    p.add_argument("--head-solver", help=f"frozen: how the head is trained ({' | '.join(FrozenStrategy.head_solvers)})")
    p.add_argument("--train-bn", action="store_const", const=True,
                   help="let trainable BatchNorm layers update running statistics")
    p.add_argument("--sync-bn", action="store_const", const=True,
                   help="with --train-bn under torchrun/accelerate on GPUs: batch statistics over all processes")
    _data_and_machine_flags(p)


def _data_and_machine_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--augment", help="none | light | strong (default: the plan's)")
    p.add_argument("--hflip", action="store_const", const=True,
                   help="add random horizontal flips (not for digits/text)")
    p.add_argument("--image-size", type=T.IMAGE_SIZE, help="input size in pixels (default: the backbone's, 224 for lite0)")
    p.add_argument("--crop-pct", type=T.UP_TO_ONE, help="centre-crop fraction (default: the backbone's, 0.875 for lite0; "
                   "1.0 keeps the whole image)")
    p.add_argument("--batch-size", type=T.POSITIVE_INT, help="images per batch (default 64); under torchrun/accelerate the "
                   "global batch, split evenly over the processes")
    p.add_argument("--val-fraction", type=T.FRACTION, help="held-out share when DATA has no val/ split (default 0.2)")
    p.add_argument("--val-max", type=T.POSITIVE_INT, help="hold out at most N images that way (default 5000; more only "
                   "narrows the validation score's error, and costs training images)")
    p.add_argument("--max-per-class", type=T.POSITIVE_INT, help="use at most N training images per class")
    p.add_argument("--on-bad-image", help="unreadable images: skip and list them (default) | error (stop)")
    p.add_argument("--on-duplicate", choices=["drop", "keep", "error"],
                   help="validation/test images whose content is also in train: drop them from val/test (default), "
                        "keep them (reported only) or stop; listed in duplicates.json")
    p.add_argument("--near-duplicates", action="store_const", const=True,
                   help="also report near-duplicates across splits by perceptual hash (needs imagehash)")
    p.add_argument("--class-weight", choices=["auto", "balanced", "none"],
                   help="class-balanced loss weights (also the frozen head's): auto (the default) turns them on when "
                        "the largest class has at least 3× the images of the smallest")
    p.add_argument("--patience", type=T.POSITIVE_INT, help="early stopping after N epochs without a better validation loss")
    p.add_argument("--label-smoothing", type=T.BELOW_ONE, help="0 ≤ x < 1 (default: the plan's — 0.1 when fine-tuning small data unlike "
                                                                 "ImageNet, else 0)")
    p.add_argument("--seed", type=T.NON_NEGATIVE_INT, help="random seed (default 0)")
    p.add_argument("--device", type=T.device, help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--precision", help="training autocast: auto | fp32 | bf16 | fp16 (default auto)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_const", const=False,
                   help="keep NCHW memory layout")
    p.add_argument("--no-cache", dest="feature_cache", action="store_const", const=False,
                   help="frozen: do not reuse or store cached features")
    p.add_argument("--num-workers", type=T.NON_NEGATIVE_INT, help="data-loader processes (default: 0 on small CPUs)")
    p.add_argument("--quiet", dest="progress", action="store_const", const=False,
                   help="no progress bars or per-epoch lines")


# Flags whose name is not the parameter's with dashes (a negative switch); the others are --name-with-dashes.
_NEGATIVE_FLAGS = {"pretrained": "--no-pretrained", "channels_last": "--no-channels-last",
                   "feature_cache": "--no-cache", "progress": "--quiet"}
_SWITCHES = {"resume": "--resume", "overwrite": "--overwrite"}  # fit()'s own switches, which are no config setting
_RENAMED = {"out_dir": "--out"}  # fit()'s arguments whose flag has another name


def config_from_args(args: argparse.Namespace) -> Any:
    """The flags as a :class:`RunConfig`: ``--config``'s file (or the defaults), each flag given overriding it."""
    from .config import PARAMETERS, RunConfig

    base = RunConfig.load(args.config) if getattr(args, "config", None) else RunConfig()
    return base.override({name: getattr(args, name) for name in PARAMETERS if hasattr(args, name)})


def flag_message(message: str) -> str:
    """A library error in the CLI's words: ``lr=0`` → ``--lr 0``, ``pretrained=False`` → ``--no-pretrained``."""
    from .config import PARAMETERS

    def flag(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        if name in _NEGATIVE_FLAGS:
            return _NEGATIVE_FLAGS[name] if value == "False" else f"(without {_NEGATIVE_FLAGS[name]})"
        if name in _SWITCHES:
            return _SWITCHES[name] if value == "True" else f"(without {_SWITCHES[name]})"
        return f"{_RENAMED.get(name, '--' + name.replace('_', '-'))} {value.strip(chr(39))}"

    names = "|".join(sorted([*PARAMETERS, *_SWITCHES, *_RENAMED], key=len, reverse=True))
    return re.sub(rf"\b({names})=('[^']*'|[^\s,;:)]+)", flag, message)


def train(args: argparse.Namespace) -> int:
    from .resolution import check_names

    config = config_from_args(args)
    check_names(config)  # a typo fails here, before torch and the data are loaded
    from .classifier import TransferClassifier
    from .train import is_main

    clf = TransferClassifier(config=config)
    try:
        clf.fit(args.data, out_dir=args.out, resume=args.resume, overwrite=args.overwrite)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: say what is kept and how to go on
        if is_main():
            print(interruption_message(e, args), file=sys.stderr, flush=True)
        from .train.interrupt import exit_code

        return exit_code(e)
    if is_main():  # under torchrun / accelerate every process trains; one reports
        print(training_summary(clf, args.out))
    return 0


def interruption_message(error: KeyboardInterrupt, args: argparse.Namespace) -> str:
    """What an interrupted ``train`` prints: which signal, what was kept, the command that continues."""
    from .run_folder import read_history

    what = f"interrupted ({error})" if str(error) else "interrupted"
    run_dir = Path(getattr(error, "run_dir", args.out))
    if not getattr(error, "resumable", False):
        kept = "the previous run in it is unchanged" if args.overwrite else "no epoch had finished"
        return f"\n{what}: {run_dir}: {kept}; nothing to resume"
    epochs = len(read_history(run_dir))
    again = " ".join(shlex.quote(a) for a in ("shoulders", "train", args.data, "--out", str(run_dir)))
    return (f"\n{what} after epoch {epochs}; its checkpoint is kept in {run_dir}. To continue, run the same "
            f"command with --resume added:\n  {again} [your other flags] --resume")


def training_summary(clf: Any, out: str | Path | None) -> str:
    """The lines printed after training: what was chosen and why, what it scored, where it went."""
    m, s = clf.metrics_, clf.strategy_
    lines = [f"backbone   {clf.config_.model.backbone} (weights: {clf.weights_.source}"
             + (f", {clf.weights_.location}" if clf.weights_.location else "") + ")",
             f"strategy   {s['name']}: {s['description']}"]
    for phase in s["phases"]:
        lines.append(f"  phase {phase['phase']}: trains {', '.join(phase['trainable_blocks']) or 'the head only'}"
                     f" ({phase['trainable_params']:,} of {phase['total_params']:,} parameters)")
    for reason in clf.plan_.reasons:
        lines.append(f"  why: {reason}")
    if getattr(clf, "advice_", None):
        from .advisor.matrix import advice_matrix_text

        lines.append(advice_matrix_text(clf.advice_))
    if clf.bad_images_:
        lines.append(f"skipped    {len(clf.bad_images_)} unreadable image(s), listed in bad_images.json")
    duplicates = getattr(clf, "duplicates_", None)
    if duplicates and (duplicates["exact"] or duplicates["near"]):
        from .data.duplicates import summary_text
        from .run_folder import DUPLICATES_NAME

        lines.append(f"leakage    {summary_text(duplicates)}; listed in {DUPLICATES_NAME}")
    lines.append(f"val acc    {m['val_accuracy']:.4f}" + (f"   test acc {m['test_accuracy']:.4f}" if "test_accuracy" in m else ""))
    timing = clf.runtime_.get("timing") or {}
    lines.append(f"time       {timing.get('line') or format(clf.runtime_.get('seconds', 0), '.1f') + ' s'} on "
                 f"{clf.runtime_.get('device', '?')}")
    if out is not None:
        lines.append(f"run folder {out}")
    return "\n".join(lines)
