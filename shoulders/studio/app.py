"""The studio's HTTP face: one static page and a JSON API over :class:`~shoulders.studio.state.Studio`.

Routes only translate HTTP to calls and back. Library errors (``ValueError`` and friends: bad input, with a
message that says what to do) become a 4xx JSON ``{"error": ...}`` that the page shows; anything unexpected a 500
with its message, never a dead server. Slow work runs off the event loop: plain ``def`` routes run in Starlette's
thread pool, and advice, evaluation, export and training are background jobs the page polls.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any, Callable

from fastapi import Body, FastAPI, File, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.concurrency import run_in_threadpool

from ..serve.uploads import RequestSizeLimit, UploadError
from .planning import budget_table_available, train_takes_budget
from .state import MATRIX_FILE, Studio

STATIC = Path(str(files("shoulders.studio") / "static"))
STUDIO_HEADER = "X-Shoulders-Studio"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UploadError)
    async def _upload(_: Request, exc: UploadError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(FileNotFoundError)
    async def _missing(_: Request, exc: FileNotFoundError) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(ValueError)
    async def _bad(_: Request, exc: ValueError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(RuntimeError)
    async def _conflict(_: Request, exc: RuntimeError) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error ({type(exc).__name__}: {exc}); the server keeps running")


async def _read_uploads(uploads: list[UploadFile]) -> list[tuple[str, bytes]]:
    """(name, bytes) per file; the request's size was already bounded by ``RequestSizeLimit``."""
    return [(upload.filename or "upload", await upload.read()) for upload in uploads]


def _guard_requests(app: FastAPI, allowed_hosts: list[str] | None) -> None:
    """Only the studio's own page may change anything: every POST carries ``X-Shoulders-Studio: 1``, a header
    another web site's page cannot send to this address without the CORS permission the studio never gives. With
    ``allowed_hosts`` (a loopback bind), a request naming another host (DNS rebinding) is refused too."""

    @app.middleware("http")
    async def _own_page_only(request: Request, call_next: Any) -> Any:
        if request.method not in ("GET", "HEAD") and request.headers.get(STUDIO_HEADER) != "1":
            return _error(403, f"changes come from the studio's own page (header {STUDIO_HEADER}: 1)")
        return await call_next(request)

    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)


def create_app(studio: Studio, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The FastAPI application serving ``studio``; ``allowed_hosts`` limits the ``Host`` header it answers."""
    app = FastAPI(title="shoulders studio", docs_url=None, redoc_url=None, openapi_url=None)
    _install_error_handlers(app)
    _guard_requests(app, allowed_hosts)
    app.add_middleware(RequestSizeLimit, limits=studio.settings.upload_limits)
    _data_routes(app, studio)
    _run_routes(app, studio)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _data_routes(app: FastAPI, studio: Studio) -> None:
    @app.get("/api/session")
    def session() -> dict[str, Any]:
        s = studio.settings
        return {"backbone": s.backbone, "weights": s.weights, "image_size": s.image_size, "device": s.device,
                "runs_dir": str(s.runs_dir), "workspace": str(s.workspace),
                "budget_table": budget_table_available(), "train_budget": train_takes_budget(),
                "data": str(studio.data) if studio.data else None,
                "max_files": s.upload_limits.max_files, "max_request_bytes": s.upload_limits.max_request_bytes}

    @app.get("/api/data")
    def data() -> dict[str, Any]:
        return {"summary": studio.summary()}

    @app.post("/api/data/open")
    def open_data(path: str = Body(..., embed=True)) -> dict[str, Any]:
        return {"summary": studio.open_data(path)}

    @app.post("/api/data/new")
    def new_data(name: str = Body(..., embed=True)) -> dict[str, Any]:
        return {"summary": studio.new_data(name)}

    @app.post("/api/data/classes")
    def add_class(name: str = Body(..., embed=True)) -> dict[str, Any]:
        return {"summary": studio.add_class(name)}

    @app.post("/api/data/classes/{class_name}/images")
    async def add_images(class_name: str, images: list[UploadFile] = File(...)) -> dict[str, Any]:
        uploads = await _read_uploads(images)
        return await run_in_threadpool(studio.add_images, class_name, uploads)

    @app.post("/api/advise")
    def advise(image_size: int | None = Body(None, embed=True)) -> dict[str, Any]:
        return studio.start_advice(image_size)

    @app.get("/api/advise")
    def advice() -> dict[str, Any]:
        return studio.advice()

    @app.post("/api/advise/budget")
    def start_budget_table() -> dict[str, Any]:
        return studio.start_budget_table()

    @app.get("/api/advice/matrix.png")
    def matrix() -> Response:
        path = studio.settings.workspace / MATRIX_FILE
        if not path.is_file():
            raise FileNotFoundError("no advice yet: run the advisor on the advise tab")
        return FileResponse(path, media_type="image/png")


def _by_name(method: Callable[[str], dict[str, Any]]) -> Callable[[str], dict[str, Any]]:
    """A route handler that passes the path's ``{name}`` to ``method``."""
    def endpoint(name: str) -> dict[str, Any]:
        return method(name)

    return endpoint


def _run_routes(app: FastAPI, studio: Studio) -> None:
    @app.get("/api/runs")
    def runs() -> dict[str, Any]:
        return {"runs": studio.runs()}

    @app.post("/api/runs")
    def start(request: dict[str, Any] = Body(...)) -> dict[str, Any]:
        return studio.start_training(request)

    app.get("/api/runs/{name}", name="run")(_by_name(studio.run))
    for action, method in (("cancel", studio.cancel), ("resume", studio.resume),
                           ("evaluate", studio.start_evaluation)):
        app.post(f"/api/runs/{{name}}/{action}", name=action)(_by_name(method))

    @app.post("/api/runs/{name}/export")
    def export(name: str, format: str = Body("onnx", embed=True)) -> dict[str, Any]:
        return studio.start_export(name, format)

    @app.get("/api/tasks/{kind}/{name}")
    def task(kind: str, name: str) -> dict[str, Any]:
        return studio.task(f"{kind}:{name}")

    @app.get("/api/runs/{name}/files/{filename}")
    def run_file(name: str, filename: str) -> FileResponse:
        path = studio.run_file(name, filename)
        inline = path.suffix in (".png", ".html", ".json", ".csv")
        return FileResponse(path, filename=None if inline else path.name)

    @app.post("/api/runs/{name}/predict")
    async def predict(name: str, image: UploadFile = File(...)) -> dict[str, Any]:
        (filename, content), = await _read_uploads([image])
        return await run_in_threadpool(studio.predict, name, filename, content)
