"""The studio's state and actions, independent of HTTP: which data set is open, the advice, the runs.

Every action calls the library (``advise``, ``evaluate_run``, ``export_run``, ``TransferClassifier``) or the
``shoulders train`` command; nothing here decides anything the command line could not.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import safe_dirname
from ..run_folder import CHECKPOINT_NAME, is_run_folder, read_history
from .dataset import summarize
from .jobs import Tasks, TrainJob, log_tail, read_job
from .planning import budget_table, budget_table_available, train_takes_budget
from ..serve.uploads import Upload, UploadLimits, check_file_count, decode_image

MATRIX_FILE = "advice-matrix.png"
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
STRATEGIES = ("auto", "full", "partial", "frozen")
TOP_K = 5


@dataclass
class Settings:
    """What the ``shoulders studio`` command line fixed for the session."""

    runs_dir: Path  # every run the page starts is a folder here
    workspace: Path  # data sets created in the browser go here
    backbone: str
    weights: str | None = None
    image_size: int | None = None  # default input size for advice and training (None: the backbone's)
    device: str = "auto"
    upload_limits: UploadLimits = field(default_factory=UploadLimits)  # the same as `shoulders serve`'s


class Studio:
    """One studio session: the open data set, the tasks in flight and the training jobs it started."""

    def __init__(self, settings: Settings, data: str | None = None) -> None:
        self.settings = settings
        self.data: Path | None = None
        self.tasks = Tasks()
        self.jobs: dict[str, TrainJob] = {}
        self._classifiers: dict[str, tuple[float, Any]] = {}
        self._advice: tuple[Path, Any] | None = None  # the last Advice object, for the planner's table
        self._lock = threading.Lock()
        settings.runs_dir.mkdir(parents=True, exist_ok=True)
        if data is not None:
            self.open_data(data)

    # -- data --------------------------------------------------------------------------------------------------
    def open_data(self, path: str) -> dict[str, Any]:
        candidate = Path(path).expanduser()
        if not candidate.exists():
            raise FileNotFoundError(f"{path} does not exist; give the path of an image folder on this computer "
                                    "(DATA/<class>/*.jpg) or of a CSV with columns path,label")
        summary = summarize(candidate)
        self.data = candidate.resolve()
        return summary

    def new_data(self, name: str) -> dict[str, Any]:
        folder = self.settings.workspace / safe_dirname(name.strip() or "dataset")
        folder.mkdir(parents=True, exist_ok=True)
        self.data = folder.resolve()
        return summarize(folder)

    def _data(self) -> Path:
        if self.data is None:
            raise ValueError("no data set is open: open a folder or create a new data set on the data tab first")
        return self.data

    def summary(self) -> dict[str, Any] | None:
        return summarize(self.data) if self.data is not None else None

    def add_class(self, name: str) -> dict[str, Any]:
        data = self._data()
        if not data.is_dir() or (data / "train").is_dir():
            raise ValueError(f"classes can be added to a plain class-folder data set; {data} is a CSV or is split "
                             "into train/val/test: add its folders on disk")
        if not name.strip():
            raise ValueError("a class needs a name")
        (data / safe_dirname(name.strip())).mkdir(exist_ok=True)
        return summarize(data)

    def add_images(self, class_name: str, files: list[tuple[str, bytes]]) -> dict[str, Any]:
        """Decodes each upload and saves it as PNG in the class folder; bad files are reported, not saved."""
        folder = self._data() / safe_dirname(class_name)
        if not folder.is_dir():
            raise ValueError(f"class {class_name!r} does not exist in {self._data()}; add the class first")
        check_file_count(len(files), self.settings.upload_limits)
        saved, rejected = [], []
        for filename, content in files:
            try:
                image = decode_image(Upload(filename, content), self.settings.upload_limits).image
            except ValueError as exc:  # UploadError: the file is refused with its reason, the others go on
                rejected.append({"file": filename, "error": str(exc)})
                continue
            target = _free_name(folder, Path(filename).stem)
            image.save(target, format="PNG")
            saved.append(target.name)
        return {"saved": saved, "rejected": rejected, "summary": summarize(self._data())}

    # -- advice ------------------------------------------------------------------------------------------------
    def start_advice(self, image_size: int | None) -> dict[str, Any]:
        data = self._data()
        size = image_size or self.settings.image_size
        return self.tasks.submit("advise", lambda: self._advise(data, size)).to_dict()

    def _advise(self, data: Path, image_size: int | None) -> dict[str, Any]:
        from ..advisor import advise

        s = self.settings
        advice = advise(str(data), backbone=s.backbone, weights=s.weights, image_size=image_size, device=s.device,
                        progress=False)
        advice.save_matrix(s.workspace / MATRIX_FILE)
        self._advice = (data, advice)
        return {"data": str(data), "advice": advice.to_dict(), "report": advice.report(),
                "matrix": f"/api/advice/matrix.png?t={time.time():.0f}", "budget_table": budget_table_available()}

    def advice(self) -> dict[str, Any]:
        return self.task("advise")

    def start_budget_table(self) -> dict[str, Any]:
        if self._advice is None:
            raise ValueError("no advice yet: the table starts from the advisor's measurements; advise first")
        if not budget_table_available():
            raise ValueError("this shoulders has no budget planner yet")
        data, advice = self._advice
        s = self.settings
        return self.tasks.submit("budget:table", lambda: budget_table(
            data, advice, weights=s.weights, device=s.device)).to_dict()

    # -- training ----------------------------------------------------------------------------------------------
    def start_training(self, request: dict[str, Any]) -> dict[str, Any]:
        data = self._data()
        name = (request.get("name") or "").strip() or time.strftime("run-%Y%m%d-%H%M%S")
        if not RUN_NAME.match(name):
            raise ValueError(f"run name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        run_dir = self.settings.runs_dir / name
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ValueError(f"{run_dir} already exists; choose another run name (or resume that run)")
        job = TrainJob(run_dir, str(data), self._train_options(request))
        with self._lock:
            self.jobs[name] = job
        job.start()
        return self.run(name)

    def _train_options(self, request: dict[str, Any]) -> dict[str, Any]:
        strategy = request.get("strategy") or "auto"
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
        s = self.settings
        # no --quiet: the per-epoch lines go to train.log, which the page shows (progress bars stay off in a log)
        options: dict[str, Any] = {"strategy": strategy, "backbone": s.backbone, "weights": s.weights,
                                   "device": s.device, "epochs": _positive_int(request.get("epochs"), "epochs"),
                                   "image_size": _positive_int(request.get("image_size"), "image size")
                                   or s.image_size}
        budget = (request.get("budget") or "").strip()
        if budget:
            if not train_takes_budget():
                raise ValueError("`shoulders train` takes no --budget in this version: leave the budget empty and "
                                 "set epochs and image size")
            options["budget"] = budget
        return options

    def _job(self, name: str) -> TrainJob:
        run_dir = self._run_dir(name)
        with self._lock:
            job = self.jobs.get(name)
            if job is None:
                record = read_job(run_dir)
                if record is None:
                    raise ValueError(f"run {name} was not started by the studio; resume it with "
                                     f"`shoulders train DATA --out {run_dir} --resume`")
                job = self.jobs[name] = TrainJob(run_dir, record["data"], record["options"])
        return job

    def cancel(self, name: str) -> dict[str, Any]:
        self._job(name).cancel()
        return self.run(name)

    def resume(self, name: str) -> dict[str, Any]:
        job = self._job(name)
        if not (job.run_dir / CHECKPOINT_NAME).is_file():
            raise ValueError(f"run {name} has no checkpoint to resume from (no epoch finished, or the frozen "
                             "strategy, which has no epochs): start a new run")
        job.start(resume=True)
        return self.run(name)

    def _run_dir(self, name: str) -> Path:
        if not RUN_NAME.match(name) or not (self.settings.runs_dir / name).is_dir():
            raise FileNotFoundError(f"no run named {name!r} in {self.settings.runs_dir}")
        return self.settings.runs_dir / name

    def run(self, name: str) -> dict[str, Any]:
        """Status, history, metrics and log tail of one run, read from its folder."""
        run_dir = self._run_dir(name)
        job, record = self.jobs.get(name), read_job(run_dir) or {}
        status = record.get("status", "finished" if is_run_folder(run_dir) else "unknown")
        if job is not None and job.running:
            status = "cancelling" if job.cancelled else "running"
        elif job is not None and status == "running" and (ended := job.ended_status()):
            status = ended  # it has just exited; the watcher is about to record this
        elif status == "running":  # started by an earlier studio that is gone
            status = "interrupted"
        metrics_path = run_dir / "metrics.json"
        return {"name": name, "path": str(run_dir), "status": status, "data": record.get("data"),
                "options": record.get("options", {}), "history": read_history(run_dir),
                "finished": is_run_folder(run_dir) and status not in ("running", "cancelling"),
                "resumable": (run_dir / CHECKPOINT_NAME).is_file() and status in ("cancelled", "failed", "interrupted"),
                "metrics": _read_json(metrics_path), "log": log_tail(run_dir)}

    def runs(self) -> list[dict[str, Any]]:
        folders = sorted((p for p in self.settings.runs_dir.iterdir() if p.is_dir() and RUN_NAME.match(p.name)),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        out = []
        for p in folders:
            if is_run_folder(p) or read_job(p) is not None:
                r = self.run(p.name)
                out.append({k: r[k] for k in ("name", "status", "finished", "resumable", "metrics")})
        return out

    def run_file(self, name: str, filename: str) -> Path:
        path = self._run_dir(name) / filename
        if Path(filename).name != filename or filename.startswith(".") or not path.is_file():
            raise FileNotFoundError(f"run {name} has no file {filename!r}")
        return path

    # -- evaluate, export, try ---------------------------------------------------------------------------------
    def start_evaluation(self, name: str) -> dict[str, Any]:
        run_dir = self._finished(name)
        return self.tasks.submit(f"evaluate:{name}", lambda: self._evaluate(run_dir)).to_dict()

    def _evaluate(self, run_dir: Path) -> dict[str, Any]:
        from ..pipelines import evaluate_run

        record = read_job(run_dir) or {}
        data = record.get("data")
        has_test = data is not None and (Path(data) / "test").is_dir()
        ev = evaluate_run(run_dir, data if has_test else None, split="test" if has_test else "auto",
                          device=self.settings.device)
        classes = _read_json(run_dir / "classes.json") or []
        return {"split": ev["split"], "images": ev["images"], "metrics": ev["metrics"], "classes": classes,
                "top_losses": ev["top_losses"], "files": ev["files"], "report": "report.html"}

    def start_export(self, name: str, fmt: str) -> dict[str, Any]:
        run_dir = self._finished(name)
        return self.tasks.submit(f"export:{name}", lambda: self._export(run_dir, fmt)).to_dict()

    @staticmethod
    def _export(run_dir: Path, fmt: str) -> dict[str, Any]:
        from ..pipelines import export_run

        r = export_run(run_dir, fmt)
        return {"format": r.format, "file": r.path.name, "spec": r.input_spec_path.name,
                "max_abs_diff": r.max_abs_diff, "tolerance": r.tolerance, "passed": r.max_abs_diff <= r.tolerance}

    def task(self, key: str) -> dict[str, Any]:
        task = self.tasks.get(key)
        return task.to_dict() if task else {"status": "none"}

    def predict(self, name: str, filename: str, content: bytes) -> dict[str, Any]:
        image = decode_image(Upload(filename, content), self.settings.upload_limits).image
        clf = self._classifier(self._finished(name))
        row = clf.predict_top_k(np.asarray(image, dtype=np.uint8)[None], k=TOP_K)[0]
        return {"run": name, "file": filename, "size": list(image.size), "label": row["label"],
                "top_k": row["top_k"]}

    def _classifier(self, run_dir: Path) -> Any:
        """The run's classifier, loaded once and again only when its model file changes (a resumed run)."""
        from ..classifier import TransferClassifier

        stamp = (run_dir / "model.safetensors").stat().st_mtime
        with self._lock:
            cached = self._classifiers.get(run_dir.name)
            if cached is None or cached[0] != stamp:
                cached = self._classifiers[run_dir.name] = (stamp, TransferClassifier.load(
                    run_dir, device=self.settings.device))
        return cached[1]

    def _finished(self, name: str) -> Path:
        run = self.run(name)
        if not run["finished"]:
            raise ValueError(f"run {name} has no trained model yet (status: {run['status']}); wait for it to finish")
        return self._run_dir(name)


def _free_name(folder: Path, stem: str) -> Path:
    stem = safe_dirname(stem)[:80] or "image"
    target, n = folder / f"{stem}.png", 1
    while target.exists():
        target, n = folder / f"{stem}-{n}.png", n + 1
    return target


def _positive_int(value: Any, what: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a whole number, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{what} must be at least 1, got {number}")
    return number


def _read_json(path: Path) -> Any:
    from ..run_folder import load_json

    return load_json(path) if path.is_file() else None
