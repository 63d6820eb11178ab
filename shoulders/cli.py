"""The ``shoulders`` command: each subcommand parses its arguments, calls the library, prints. No logic lives here."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from . import cli_types as T
from .cache_cli import cache_args, run_cache
from .config import DEFAULT_BACKBONE
from .train_cli import flag_message, train_args as _train_args, train as _train, training_summary  # noqa: F401
from .studio.command import add_arguments as _studio_args, run as _studio
from .serve.command import HELP as SERVE_HELP, serve_args, serve_command

# glibc's default malloc returns large activation buffers to the OS after every step (≈18 M page faults per run);
# keeping them mapped made training and inference ≈3x faster on this kind of machine (FINDINGS). The setting only
# works from process start, so the CLI re-executes itself once with it. SHOULDERS_NO_REEXEC=1 turns this off.
GLIBC_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4000000000"
# The commands that run a network, hence gain from the tuning; the others (zoo, --help, --version) start in a
# fraction of a second, which a second interpreter start would double. Nothing heavy (torch, timm) is imported
# before this decision: this module imports only the standard library and ``config`` at the top, and each
# command imports what it needs when it runs.
NETWORK_COMMANDS = frozenset({"train", "predict", "evaluate", "advise", "demo", "export", "studio", "serve"})


def _reexec_with_malloc_tuning(argv: Sequence[str]) -> None:
    if os.environ.get("SHOULDERS_NO_REEXEC") or os.environ.get("GLIBC_TUNABLES") or sys.platform != "linux":
        return
    env = {**os.environ, "GLIBC_TUNABLES": GLIBC_TUNABLES, "SHOULDERS_NO_REEXEC": "1"}
    try:
        os.execve(sys.executable, [sys.executable, "-m", "shoulders", *argv], env)
    except OSError:  # e.g. a frozen interpreter: run on without the tuning rather than fail
        return


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    if argv is None:  # a real command line (not a call from Python): the malloc tuning is worth a re-exec
        argv = sys.argv[1:]
        if argv and argv[0] in NETWORK_COMMANDS:
            _reexec_with_malloc_tuning(argv)
    argv = list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("\ninterrupted; a run with --out can continue with --resume", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        if os.environ.get("SHOULDERS_DEBUG"):
            raise
        print(f"shoulders: error: {flag_message(str(e))}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="shoulders", description="Transfer learning for image classification: "
                                     "measure the dataset, choose how to fine-tune a pretrained network, explain why.")
    parser.add_argument("--version", action="version", version=f"shoulders {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, (help_text, add_args, func) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(func=func)
    return parser


# -- zoo ---------------------------------------------------------------------------------------------------------
def _zoo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _zoo(args: argparse.Namespace) -> int:
    from .models import list_backbones

    rows = list_backbones()
    if args.json:
        print(json.dumps([vars(r) for r in rows], indent=2))
        return 0
    print(f"{'backbone':<24} {'aliases':<26} {'input':>5} {'params':>8} {'features':>8}  pretrained weights")
    for r in rows:
        print(f"{r.name:<24} {', '.join(r.aliases):<26} {r.input_size:>5} {r.params_m:>7.1f}M {r.num_features:>8}  "
              f"{'offline: ' if r.offline else 'online only: '}{r.weights_source}")
    print("\nAny other timm model name works too (online, or with --weights FILE).")
    return 0


# -- advise --------------------------------------------------------------------------------------------------------
def _advise_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="image folder (DATA/<class>/*, optionally with train/ val/ test/) or a CSV path,label")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, help="the backbone to advise for (default %(default)s)")
    p.add_argument("--backbones", help="comma-separated candidates to rank by LogME; the advice is for the best")
    p.add_argument("--weights", help="weights file for --backbone")
    p.add_argument("--image-size", type=T.IMAGE_SIZE, help="training input size in pixels (default: the backbone's)")
    p.add_argument("--sample-size", type=T.int_at_least(10, "images to measure"), default=300, help="images measured, at most (default %(default)s)")
    p.add_argument("--seed", type=T.NON_NEGATIVE_INT, default=0, help="which images are sampled (default 0)")
    p.add_argument("--device", type=T.device, default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--matrix", metavar="PNG", help="also write the size-similarity matrix picture here")
    p.add_argument("--budget", type=T.budget, action="append",
                   help="a budget to plan for (repeatable; default: a table from 1 min to 1 h)")
    p.add_argument("--no-recipes", dest="recipes", action="store_false",
                   help="skip the budget table (it probes this machine's speed once, then reads the cache)")
    p.add_argument("--json", action="store_true", help="print the advice as JSON")


def _advise(args: argparse.Namespace) -> int:
    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()] if args.backbones is not None else None
    if backbones == []:
        raise ValueError("--backbones names no backbone; give comma-separated names, e.g. --backbones "
                         "tf_efficientnet_lite0,resnet50 (see `shoulders zoo`)")
    from .models import resolve_backbone_name  # torch-free: a typo fails before the data is read

    for flag, name in [("--backbone", args.backbone), *(("--backbones", b) for b in backbones or [])]:
        try:
            resolve_backbone_name(name)
        except ValueError as e:
            raise ValueError(f"{flag} {name}: {e}") from None
    from .advisor import advise
    from .data import load_data

    splits = load_data(args.data, seed=args.seed)
    advice = advise(splits, backbone=args.backbone, backbones=backbones, weights=args.weights,
                    image_size=args.image_size, sample_size=args.sample_size, seed=args.seed, device=args.device,
                    progress=False)
    if args.matrix:
        advice.save_matrix(args.matrix)
    recipes = None
    if args.recipes:
        from .planner.budget import parse_budget
        from .planner.plan_run import DEFAULT_TABLE_BUDGETS, recipes_by_budget, table_text

        budgets = [parse_budget(b) for b in args.budget] if args.budget else DEFAULT_TABLE_BUDGETS
        recipes = recipes_by_budget(splits, advice, weights=args.weights if not backbones else None,
                                    device=args.device, budgets=budgets, seed=args.seed)
    if args.json:
        print(json.dumps({**advice.to_dict(), "recipes": recipes}, indent=2))
    else:
        print(advice.report() + ("\n\nbudget → plan on this machine\n" + table_text(recipes) if recipes else ""))
    return 0


# -- predict -------------------------------------------------------------------------------------------------------
def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="[RUN_DIR] IMAGE",
                   help="a run folder first (else the backbone's own ImageNet classifier answers), then image files, "
                        "directories or glob patterns")
    p.add_argument("--top-k", type=T.int_at_least(1, "classes per image"), default=None, help="classes per image (default 5 for ImageNet, 3 otherwise)")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, help="without a run folder: whose ImageNet head answers")
    p.add_argument("--weights", help="without a run folder: a weights file for --backbone")
    p.add_argument("--on-bad-image", choices=["skip", "error"], default="skip",
                   help="unreadable images get a row with their error; error: also exit with status 1")
    p.add_argument("--device", type=T.device, default=None, help="auto | cpu | cuda | cuda:N (default: the run's)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average over test-time views (flips only where the run trained with flips); "
                        "default: the run's rule")
    p.add_argument("--explain", metavar="DIR", help="write each image with the heatmap of its top class to DIR")
    p.add_argument("--cam-method", default="gradcam", help="heatmap method for --explain (default %(default)s)")
    p.add_argument("--runtime", choices=["auto", "torch", "onnx"], default="auto",
                   help="onnx: the run folder's model.onnx (from `shoulders export RUN_DIR`) through onnxruntime, "
                        "without importing torch — starts in well under a second; auto (default): onnx where the "
                        "export is up to date and nothing needs torch (--tta, --explain, a GPU), else torch")


def _predict(args: argparse.Namespace) -> int:
    from .export.runtime import choose_road, predict_top_k

    inputs = list(args.inputs)
    onnx, why_not = choose_road(inputs[0], args.runtime, tta=args.tta, explain=bool(args.explain), device=args.device)
    if onnx is not None:
        if len(inputs) < 2:
            raise ValueError("no images given: shoulders predict [RUN_DIR] IMAGE [IMAGE ...]")
        rows, k = predict_top_k(onnx, inputs[1:], args.top_k or 3), args.top_k or 3
        return _print_rows(args, rows, min(k, len(onnx.classes)))
    if why_not:
        print(f"shoulders: predicting with torch — {why_not}", file=sys.stderr)
    from .classifier import TransferClassifier
    from .run_folder import is_run_folder

    if is_run_folder(inputs[0]):
        clf, k = TransferClassifier.load(inputs.pop(0), device=args.device), args.top_k or 3
    else:
        clf, k = TransferClassifier.pretrained(args.backbone, weights=args.weights, device=args.device), args.top_k or 5
    if not inputs:
        raise ValueError("no images given: shoulders predict [RUN_DIR] IMAGE [IMAGE ...]")
    rows = clf.predict_top_k(inputs, k=k, tta=args.tta)
    k = min(k, len(clf.classes_))
    if args.explain:
        from .pipelines import write_heatmaps

        readable = [row for row in rows if "error" not in row]
        for row, path in zip(readable, write_heatmaps(clf, [r["path"] for r in readable], args.explain,
                                                      method=args.cam_method)):
            row["heatmap"] = str(path)
    return _print_rows(args, rows, k)


def _print_rows(args: argparse.Namespace, rows: list[dict[str, Any]], k: int) -> int:
    fmt = "json" if args.json else args.format
    if fmt == "json":
        print(json.dumps(rows, indent=2))
    elif fmt == "csv":
        _print_csv(rows, k)
    else:
        for row in rows:
            tops = "  ".join(f"{t['label']} {t['probability']:.3f}" for t in row["top_k"])
            if "error" in row:
                print(f"{row['path']}: unreadable ({row['error']})")
            else:
                print(f"{row['path']}: {tops}" + (f"  [heatmap {row['heatmap']}]" if "heatmap" in row else ""))
    bad = sum("error" in row for row in rows)
    if bad:
        print(f"shoulders: {bad} of {len(rows)} image(s) could not be read; their rows give the error"
              + ("" if args.on_bad_image == "error" else " (--on-bad-image error makes this exit with status 1)"),
              file=sys.stderr)
    return 1 if bad and args.on_bad_image == "error" else 0


def _print_csv(rows: list[dict[str, Any]], k: int) -> None:
    import csv

    writer = csv.writer(sys.stdout)
    writer.writerow(["path", "label"] + [f"{name}_{i + 1}" for i in range(k) for name in ("label", "probability")]
                    + ["error"])
    for row in rows:
        tops = [v for t in row["top_k"] for v in (t["label"], f"{t['probability']:.6f}")]
        writer.writerow([row["path"], row["label"] or ""] + (tops or [""] * (2 * k)) + [row.get("error", "")])


# -- demo ----------------------------------------------------------------------------------------------------------
def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=["auto", "digits", "fashion-mnist"], default="auto",
                   help="auto: Fashion-MNIST (100 per class) when its Debian package is installed, else digits")
    p.add_argument("--out", default="runs/demo", help="run folder (default %(default)s)")
    p.add_argument("--data-dir", default=None, help="where the dataset is written as an image folder")
    p.add_argument("--strategy", default="auto")
    p.add_argument("--image-size", type=T.IMAGE_SIZE, default=64, help="input size in pixels (default 64)")
    p.add_argument("--epochs", type=T.POSITIVE_INT, default=None, help="default: the plan's")
    p.add_argument("--quiet", action="store_true")


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    result = run_demo(dataset=args.dataset, out=args.out, data_dir=args.data_dir, strategy=args.strategy,
                      image_size=args.image_size, epochs=args.epochs, progress=not args.quiet)
    print(training_summary(result.classifier, args.out))
    print()
    print(result.comparison())
    return 0


# -- evaluate / export ---------------------------------------------------------------------------------------------
def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run folder from `shoulders train`")
    p.add_argument("data", help="labelled images: a class folder, a split folder (its test/ is used) or a CSV")
    p.add_argument("--split", choices=["auto", "train", "val", "test", "all"], default="auto",
                   help="auto (test, else val, else all) or train | val | test | all (a source without splits)")
    p.add_argument("--on-bad-image", choices=["skip", "error"], default="skip")
    p.add_argument("--device", type=T.device, default=None, help="auto | cpu | cuda | cuda:N (default: the run's)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average over test-time views (flips only where the run trained with flips); "
                        "default: the run's rule")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _evaluate(args: argparse.Namespace) -> int:
    from .pipelines import evaluate_run

    ev = evaluate_run(args.run_dir, args.data, split=args.split, on_bad_image=args.on_bad_image, device=args.device,
                      report=not args.no_report, tta=args.tta)
    if args.json:
        print(json.dumps({**ev["metrics"], "bad_images": ev["bad_images"]}, indent=2))
        return 0
    m = ev["metrics"]
    print(f"{ev['images']} images ({ev['split']} split of {args.data})"
          + (f", test-time views: {', '.join(ev['tta']['views'])}" if ev["tta"]["enabled"] else ""))
    print(f"accuracy {m['accuracy']:.4f}   balanced accuracy {m['balanced_accuracy']:.4f}   "
          f"log loss {m['log_loss']:.4f}   ECE {m['ece']:.4f}")
    for k, v in m.get("top_k_accuracy", {}).items():
        print(f"top-{k} accuracy {v:.4f}")
    print(f"\n{'class':<24} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
    for name, c in m["per_class"].items():
        print(f"{name:<24} {c['precision']:>9.3f} {c['recall']:>7.3f} {c['f1']:>7.3f} {c['support']:>8}")
    if m["most_confused"]:
        print("\nmost confused (true → predicted: count)")
        for pair in m["most_confused"][:5]:
            print(f"  {pair['true']} → {pair['predicted']}: {pair['count']}")
    if ev["bad_images"]:
        print(f"\nskipped {len(ev['bad_images'])} unreadable image(s) (listed in evaluation.json):")
        for b in ev["bad_images"]:
            print(f"  {b['path']}: {b['reason']}")
    print(f"\nwritten: {', '.join(Path(f).name for f in ev['files'])}" + (f", {ev['report']}" if "report" in ev else ""))
    return 0


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run folder from `shoulders train`")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx", help="default onnx")
    p.add_argument("--out", help="output file (default RUN_DIR/model.onnx or model.pt)")
    p.add_argument("--quantize", action="store_true", help="ONNX: also write a dynamic int8 model and measure it")
    p.add_argument("--tolerance", type=T.positive_float(), default=1e-4, help="max |Δ probability| allowed by the parity check")


def _export(args: argparse.Namespace) -> int:
    from .pipelines import export_run

    r = export_run(args.run_dir, args.format, args.out, quantize=args.quantize, tolerance=args.tolerance)
    print(f"exported   {r.path} ({r.format})")
    print(f"parity     max |Δ probability| vs PyTorch = {r.max_abs_diff:.2e} (tolerance {r.tolerance:.0e})")
    print(f"input spec {r.input_spec_path}")
    if r.quantized:
        print(f"int8       {r.quantized_path} (max |Δ| vs fp32 {r.quantized_max_abs_diff:.2e}"
              + (f", accuracy change {r.accuracy_change:+.2f} points on validation images)" if r.accuracy_change
                 is not None else "; no validation images to measure accuracy on)"))
    return 0


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "zoo": ("list the backbones, their input size and whether pretrained weights are available offline", _zoo_args, _zoo),
    "advise": ("measure a dataset's size and similarity to ImageNet, place it in the size-similarity matrix, plan "
               "the fine-tuning", _advise_args, _advise),
    "train": ("train a classifier on a folder of labelled images", _train_args, _train),
    "predict": ("classify images with a trained run folder, or with the backbone's ImageNet head", _predict_args, _predict),
    "evaluate": ("metrics, confusion matrix, top losses and report.html of a run folder on labelled images",
                 _evaluate_args, _evaluate),
    "export": ("export a run folder to ONNX or TorchScript, checked against PyTorch", _export_args, _export),
    "demo": ("train on a dataset that ships with a package and compare with a from-pixels baseline", _demo_args, _demo),
    "cache": ("the frozen strategy's feature cache: info (where, how big, its cap) or clear", cache_args, run_cache),
    "studio": ("a local web page to build a data set, see the advice, train, evaluate, try and export", _studio_args, _studio),
    "serve": (SERVE_HELP, serve_args, serve_command),
}
