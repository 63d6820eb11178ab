"""The FastAPI application of ``shoulders serve``: ``POST /predict``, ``GET /health``, ``GET /info``, docs at ``/docs``.

Requests decode and preprocess their images in the thread pool, then wait on the micro-batcher, which runs the
model once for every image that arrived within its window. Every bad input is an :class:`UploadError` answered
as 4xx JSON ``{"detail": ...}``; a full queue is a 503. Shutdown (SIGTERM, Ctrl-C) lets uvicorn finish the
requests in flight, then the batcher drains its queue and stops.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, AsyncIterator

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from shoulders.serve.batcher import BatcherClosed, BatcherFull, MicroBatcher
from shoulders.serve.model import Prepared, ServedModel
from shoulders.serve.uploads import (BAD_REQUEST, TOO_LARGE, UNPROCESSABLE, UNSUPPORTED_MEDIA, RequestSizeLimit,
                                     Upload, UploadError, UploadLimits, check_file_count, decode_uploads,
                                     uploads_from_base64)

FILES_FIELD = "files"  # the multipart field that carries the images: curl -F files=@cat.jpg


@dataclass(frozen=True)
class ServeSettings:
    """How the server runs. Defaults: local only, a 5 ms window, batches of up to 32 images.

    Attributes:
        host: the interface to bind; 127.0.0.1 keeps the service on this machine.
        port: the TCP port.
        max_batch: images per model forward, at most (1 = one forward per image, no batching).
        max_wait_ms: how long the first image of a batch waits for others.
        max_queue: images waiting for the model, at most; more gets 503 "busy".
        top_k: classes per image when a request does not say (``?top_k=``).
        limits: what one request may carry.
        device: ``None`` keeps the run's device setting.
        access_log: uvicorn's line per request.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 512
    top_k: int = 3
    limits: UploadLimits = field(default_factory=UploadLimits)
    device: str | None = None
    access_log: bool = True


class TopK(BaseModel):
    label: str
    probability: float


class PredictionRow(BaseModel):
    """One image's answer: the same fields as ``shoulders predict --json``."""

    path: str
    label: str
    top_k: list[TopK]


class JSONImage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    data: str  # base64 of the file's bytes; a data: URL prefix is accepted


class JSONImages(BaseModel):
    model_config = ConfigDict(extra="forbid")
    images: list[JSONImage]


def _request_body_doc() -> dict[str, Any]:
    multipart = {"type": "object", "required": [FILES_FIELD],
                 "properties": {FILES_FIELD: {"type": "array", "items": {"type": "string", "format": "binary"}}}}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": multipart},
        "application/json": {"schema": JSONImages.model_json_schema(ref_template="#/components/schemas/{model}")}}}}


async def _multipart_uploads(request: Request, limits: UploadLimits) -> list[Upload]:
    try:
        form = await request.form(max_files=limits.max_files, max_fields=limits.max_files)
    except HTTPException as e:  # starlette's multipart errors (too many parts, a malformed body) are 400s
        if "Too many files" in str(e.detail):
            raise UploadError(TOO_LARGE, f"more than {limits.max_files} images in one request; the limit is "
                                         f"{limits.max_files} (split them over several requests)") from None
        raise UploadError(BAD_REQUEST, f"malformed multipart body: {e.detail}") from None
    try:
        others = sorted(set(form.keys()) - {FILES_FIELD})
        if others:
            raise UploadError(BAD_REQUEST, f"unexpected form field(s) {', '.join(map(repr, others))}: send the "
                                           f"images in the field {FILES_FIELD!r} (curl -F {FILES_FIELD}=@image.jpg)")
        uploads = []
        for i, part in enumerate(form.getlist(FILES_FIELD)):
            if isinstance(part, str):
                raise UploadError(BAD_REQUEST, f"field {FILES_FIELD!r} carries text, not a file: send a file "
                                               f"(curl -F {FILES_FIELD}=@image.jpg)")
            uploads.append(Upload(part.filename or f"{FILES_FIELD}[{i}]", await part.read()))
        return uploads
    finally:
        await form.close()


def _json_uploads(body: bytes) -> list[Upload]:
    try:
        parsed = JSONImages.model_validate_json(body)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}" for err in e.errors()[:5])
        raise UploadError(BAD_REQUEST, f"the JSON body is not {{\"images\": [{{\"name\": ..., \"data\": BASE64}}]}}"
                                       f" ({problems})") from None
    return uploads_from_base64([(image.name, image.data) for image in parsed.images])


async def read_uploads(request: Request, limits: UploadLimits) -> list[Upload]:
    """The request's images as uploads, by content type; a wrong type, field or shape is an ``UploadError``."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        uploads = await _multipart_uploads(request, limits)
    elif content_type == "application/json":
        uploads = _json_uploads(await request.body())
    elif not await request.body():
        uploads = []
    else:
        raise UploadError(UNSUPPORTED_MEDIA, f"content type {content_type!r} is not accepted: send "
                                             "multipart/form-data (field 'files') or application/json")
    check_file_count(len(uploads), limits)
    return uploads


def _prepare(model: ServedModel, uploads: list[Upload], limits: UploadLimits) -> list[Prepared]:
    prepared = []
    for decoded in decode_uploads(uploads, limits):
        try:
            prepared.append(model.prepare(decoded.name, decoded.image))
        except Exception as e:  # noqa: BLE001 - a transform failure is this image's problem, not the server's
            raise UploadError(UNPROCESSABLE,
                              f"{decoded.name!r} cannot be preprocessed: {type(e).__name__}: {e}") from None
    return prepared


def create_app(model: ServedModel, settings: ServeSettings = ServeSettings()) -> FastAPI:
    """The application for one loaded run; the micro-batcher starts and stops with its lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.batcher = MicroBatcher(model.probabilities, max_batch=settings.max_batch,
                                         max_wait_s=settings.max_wait_ms / 1000, max_queue=settings.max_queue)
        try:
            yield
        finally:
            await run_in_threadpool(app.state.batcher.close)

    app = FastAPI(title="shoulders serve", version=_version(), lifespan=lifespan,
                  description=f"Predictions of the run folder `{model.run_dir}` "
                              f"({model.classifier.config_.model.backbone}, {len(model.classes)} classes).")
    app.add_middleware(RequestSizeLimit, limits=settings.limits)

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.post("/predict", response_model=list[PredictionRow], openapi_extra=_request_body_doc(),
              summary="classify one or several images (multipart field 'files', or JSON with base64)")
    async def predict(request: Request, top_k: int | None = Query(None, ge=1, le=1000,
                                                                   description="classes per image")) -> Any:
        uploads = await read_uploads(request, settings.limits)
        prepared = await run_in_threadpool(_prepare, model, uploads, settings.limits)
        try:
            probabilities = await request.app.state.batcher.run(prepared)
        except (BatcherFull, BatcherClosed) as e:
            return JSONResponse({"detail": str(e)}, status_code=503, headers={"Retry-After": "1"})
        return model.rows([p.name for p in prepared], probabilities, top_k or settings.top_k)

    @app.get("/health", summary="liveness, and whether the model is loaded and its worker running")
    async def health(request: Request) -> JSONResponse:
        batcher = getattr(request.app.state, "batcher", None)
        alive = batcher is not None and batcher.alive
        body = {"status": "ok" if alive else "unavailable", "model_loaded": True, "worker_alive": alive,
                "batches": batcher.stats.to_dict() if batcher else None}
        return JSONResponse(body, status_code=200 if alive else 503)

    @app.get("/info", summary="the run: classes, input spec, backbone, weights hashes, metrics, serving settings")
    async def info() -> dict[str, Any]:
        serving = {k: v for k, v in asdict(settings).items() if k not in ("access_log",)}
        return {**model.info(), "serving": serving}

    return app


def _version() -> str:
    from shoulders import __version__

    return __version__


def serve(model: ServedModel, settings: ServeSettings = ServeSettings()) -> None:
    """Serves a loaded run with uvicorn until SIGTERM or Ctrl-C (requests in flight finish first)."""
    import uvicorn

    config = uvicorn.Config(create_app(model, settings), host=settings.host, port=settings.port,
                            access_log=settings.access_log, log_level="info", lifespan="on")
    uvicorn.Server(config).run()
