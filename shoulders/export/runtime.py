"""Prediction from an exported ONNX file without torch: the road ``shoulders predict RUN_DIR ...`` takes when the
run folder holds an up-to-date ``model.onnx`` (written by ``shoulders export RUN_DIR``).

Importing torch, timm and torchvision takes ≈ 3.6 s on a 2-core CPU — more than the 3 s a one-image prediction
should take (benchmarks/README.md, "Where people wait"); onnxruntime imports in ≈ 0.3 s. The network is the
export, whose parity with PyTorch ``shoulders export`` checked when it wrote it; the evaluation transform is redone
here in PIL and NumPy, step for step as timm's (shorter side resized to ``floor(size / crop_pct)`` with PIL,
centre crop, scaled to [0, 1], normalised, all in float32), and ``tests/test_export.py`` checks it against timm's
transform on images of several shapes.

An export counts as up to date when its input spec names the SHA-256 of the run's ``model.safetensors``: a
retrained run folder (new weights) goes back to the torch road until it is exported again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

ONNX_NAME = "model.onnx"  # where `shoulders export RUN_DIR` writes, and where this road looks
BATCH = 32
_PIL_FILTERS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
                "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def eval_array(image: Image.Image, spec: dict[str, Any]) -> np.ndarray:
    """One RGB image → the (3, H, W) float32 array timm's evaluation transform makes of it (centre-crop mode).

    ``spec`` is an export's ``input`` entry (``size``, ``mean``, ``std``, ``interpolation``, ``crop_pct``).
    """
    _, height, width = (int(v) for v in spec["size"])
    if height != width:
        raise ValueError(f"the torch-free road handles square inputs; this export expects {height}x{width}")
    scale = math.floor(height / float(spec["crop_pct"]))
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    if short != scale:  # torchvision's Resize(int): the shorter side to `scale`, the other int(scale * long / short)
        new_long = int(scale * long / short)
        image = image.resize((scale, new_long) if w <= h else (new_long, scale), _PIL_FILTERS[spec["interpolation"]])
    pixels = np.asarray(image, dtype=np.uint8)
    pixels = _centre_crop(pixels, height, width)
    x = pixels.astype(np.float32) / np.float32(255.0)
    mean = np.asarray(spec["mean"], dtype=np.float32)
    std = np.asarray(spec["std"], dtype=np.float32)
    return np.ascontiguousarray(((x - mean) / std).transpose(2, 0, 1))


def _centre_crop(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """torchvision's ``CenterCrop`` at ``round((side - crop) / 2)``; the resize before it left both sides at least
    ``floor(size / crop_pct)`` ≥ the crop, so torchvision's zero padding never applies here."""
    h, w = pixels.shape[:2]
    top, left = int(round((h - height) / 2.0)), int(round((w - width) / 2.0))
    return pixels[top:top + height, left:left + width]


@dataclass
class OnnxRunModel:
    """A run folder's exported model and its input spec, run by onnxruntime on the CPU."""

    path: Path
    spec: dict[str, Any]  # the export's input spec (``input``) entry
    classes: list[str]

    def __post_init__(self) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings of graph optimisation are not the user's business
        self._session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def predict_proba(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Class probabilities (N, classes) of RGB images, in batches of ``BATCH``."""
        out = [np.zeros((0, len(self.classes)), dtype=np.float32)]
        for start in range(0, len(images), BATCH):
            batch = np.stack([eval_array(image, self.spec) for image in images[start:start + BATCH]])
            out.append(self._session.run(None, {self._input: batch})[0])
        return np.concatenate(out)


def onnx_road(run_dir: str | Path, config: dict[str, Any] | None = None) -> tuple[OnnxRunModel | None, str]:
    """The run folder's up-to-date ONNX export, ready to run, or ``None`` and why not (to say to the user);
    ``config`` is its ``config.json`` when the caller has read it already."""
    from shoulders.run_folder import CONFIG_NAME, MODEL_NAME

    run_dir = Path(run_dir)
    path, spec_path = run_dir / ONNX_NAME, run_dir / ONNX_NAME.replace(".onnx", ".json")
    if not path.is_file() or not spec_path.is_file():
        return None, f"no {ONNX_NAME} in {run_dir}: `shoulders export {run_dir}` writes it"
    if importlib.util.find_spec("onnxruntime") is None:
        return None, "onnxruntime is not installed: pip install 'shoulders[export]'"
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    if spec.get("format") != "onnx" or spec.get("run_weights_sha256") != file_sha256(run_dir / MODEL_NAME):
        return None, (f"{path} was not exported from this run's current weights: run `shoulders export {run_dir}` "
                      "again")
    config = config if config is not None else json.loads((run_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    if config.get("data_config", {}).get("crop_mode", "center") != "center":
        return None, "the run's preprocessing is not a centre crop, which only the torch road reproduces"
    size = spec["input"]["size"]
    if size[1] != size[2]:
        return None, f"the export's input is not square ({size[1]}x{size[2]}), which only the torch road handles"
    return OnnxRunModel(path, spec["input"], list(spec["classes"])), ""


def choose_road(first_input: str | Path, runtime: str, *, tta: bool | None = None, explain: bool = False,
                device: str | None = None) -> tuple[OnnxRunModel | None, str]:
    """``shoulders predict``'s road: the ONNX model when ``runtime`` allows it (``auto``, ``onnx``) and nothing asks
    for torch, else ``None`` and, where the user could act on it, why (empty when nothing is worth saying).

    Raises:
        ValueError: ``runtime="onnx"`` and the ONNX road is not possible (the message says why).
    """
    from shoulders.run_folder import CONFIG_NAME, check_format, is_run_folder

    if runtime not in ("auto", "torch", "onnx"):
        raise ValueError(f"runtime must be auto, torch or onnx, got {runtime!r}")
    if runtime == "torch":
        return None, ""
    run_folder = is_run_folder(first_input)
    if not run_folder:
        why = "the ImageNet head has no export; only a run folder's `shoulders export` makes one"
    else:
        config = json.loads((Path(first_input) / CONFIG_NAME).read_text(encoding="utf-8"))
        check_format(config, first_input)
        from shoulders.explain.tta_rule import tta_decision

        rule_on = tta is None and tta_decision(bool(config["config"]["data"].get("hflip"))).enabled
        needs_torch = [what for what, used in (("--tta", bool(tta)), ("--explain", explain),
                                               (f"--device {device}", device not in (None, "cpu")),
                                               ("the run's test-time augmentation rule", rule_on)) if used]
        if needs_torch:
            why = f"{', '.join(needs_torch)} needs torch"
        else:
            model, why = onnx_road(first_input, config)
            if model is not None:
                return model, ""
            if runtime == "auto" and why.startswith(f"no {ONNX_NAME}"):  # the usual case: a tip, not a warning
                return None, (f"`shoulders export {first_input}` once makes later predictions start without torch"
                              if importlib.util.find_spec("onnxruntime") else "")
    if runtime == "onnx":
        raise ValueError(f"--runtime onnx: {why}")
    return None, why if run_folder else ""


def predict_top_k(model: OnnxRunModel, inputs: Sequence[str | Path], k: int) -> list[dict[str, Any]]:
    """``TransferClassifier.predict_top_k``'s rows for files, directories or globs, through the ONNX file:
    per image its ``path``, ``label`` and ``top_k``; an unreadable image gets ``error`` instead."""
    from shoulders.data.images import BadImageError, collect_paths, open_image

    paths = collect_paths([str(p) for p in inputs])
    rows: dict[str, dict[str, Any]] = {}
    for start in range(0, len(paths), BATCH):  # decoded a batch at a time: a large folder never sits in memory
        images, kept = [], []
        for path in paths[start:start + BATCH]:
            try:
                images.append(open_image(path))
                kept.append(path)
            except BadImageError as error:
                rows[path] = {"path": path, "label": None, "top_k": [], "error": error.reason}
        rows.update({r["path"]: r for r in top_k_rows(model.predict_proba(images), model.classes, kept, k)})
    return [rows[p] for p in paths]


def top_k_rows(proba: np.ndarray, classes: Sequence[str], names: Sequence[str], k: int) -> list[dict[str, Any]]:
    """The rows of ``predict --json``: per image its ``path`` (``names[i]``), top ``label`` and ``top_k``."""
    k = min(k, proba.shape[1])
    rows = []
    for i, top in enumerate(np.argsort(-proba, axis=1)[:, :k]):
        tops = [{"label": classes[j], "probability": float(proba[i, j])} for j in top]
        rows.append({"path": names[i], "label": tops[0]["label"], "top_k": tops})
    return rows
