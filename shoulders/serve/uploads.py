"""Uploaded images → RGB pixels, with the limits a network-facing service needs. No web framework in here.

Every failure is an :class:`UploadError` carrying the HTTP status that fits it and a message that says what was
wrong, so a server answers a bad upload with a 4xx and never a 500 (``shoulders serve``; the studio's uploads use
the same functions). Decoding goes through :func:`shoulders.data.images.open_image`, the one function behind
training and ``predict`` on files, so an uploaded file gives exactly the pixels the same file gives on disk.

Limits: images per request, bytes per request (:class:`RequestSizeLimit`, an ASGI middleware, counts the body as
it arrives), pixels per image (read from the header before anything is decoded: the decompression-bomb guard) and
aspect ratio (a 1 × 10⁶ strip would become gigapixels once its short side is resized to the input size).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, NamedTuple, Sequence

from PIL import Image, UnidentifiedImageError

from shoulders.data.images import BadImageError, open_image

BAD_REQUEST, TOO_LARGE, UNSUPPORTED_MEDIA, UNPROCESSABLE = 400, 413, 415, 422

# The formats an upload may be in. Restricting PIL's format detection keeps network input away from plugins that
# hand the file to other programs (EPS runs Ghostscript) or that nobody keeps photos in.
# (MPO, phones' multi-picture JPEG, has its own plugin in older Pillow releases and is read as JPEG in newer ones.)
Image.init()  # registers every plugin, so that Image.open(..., formats=...) finds each of them
ALLOWED_FORMATS: tuple[str, ...] = tuple(
    f for f in ("PNG", "JPEG", "MPO", "GIF", "BMP", "TIFF", "WEBP", "PPM") if f in Image.OPEN)


class UploadError(ValueError):
    """A request or an uploaded file that cannot be served, and the HTTP status that says why.

    Attributes:
        status: 400 (malformed request), 413 (over a limit), 415 (not an image), 422 (an image that cannot be
            decoded: empty, truncated, damaged).
        message: what was wrong, for the response body.
    """

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class UploadLimits:
    """What one request may carry. Defaults suit photos from a phone; raise them for scans or satellite tiles.

    Attributes:
        max_files: images in one request.
        max_request_bytes: the whole request body (every file, multipart framing or base64 JSON included).
        max_pixels: width × height of one image, checked from its header before decoding (PIL's own guard only
            starts at 179 M pixels).
        max_aspect_ratio: long side ÷ short side of one image.
    """

    max_files: int = 16
    max_request_bytes: int = 32 * 2**20
    max_pixels: int = 40_000_000
    max_aspect_ratio: float = 100.0

    def __post_init__(self) -> None:
        for name in ("max_files", "max_request_bytes", "max_pixels", "max_aspect_ratio"):
            if not getattr(self, name) > 0:
                raise ValueError(f"UploadLimits {name}= must be positive, got {getattr(self, name)!r}")


class Upload(NamedTuple):
    """One uploaded file: the name it came with (a multipart filename, or one made up) and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class DecodedImage:
    """An upload decoded to RGB 8-bit (EXIF orientation applied), with what it was before conversion."""

    name: str
    image: Image.Image
    original_mode: str
    original_size: tuple[int, int]


def _header(upload: Upload) -> Image.Image:
    """Opens the image lazily (header only) with the allowed formats, mapping PIL's failures to statuses."""
    try:
        with warnings.catch_warnings():  # PIL warns from 89 M pixels; check_image_size applies our own limit
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(upload.data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise UploadError(UNSUPPORTED_MEDIA, f"{upload.name!r} is not an image in a supported format "
                                             f"({', '.join(ALLOWED_FORMATS)})") from None
    except Image.DecompressionBombError as e:
        raise UploadError(TOO_LARGE, f"{upload.name!r} is too large to decode ({e})") from None
    except Exception as e:  # noqa: BLE001 - PIL raises many types for a damaged header
        raise UploadError(UNPROCESSABLE, f"{upload.name!r} has a damaged image header: {type(e).__name__}: {e}") from None


def check_image_size(name: str, size: tuple[int, int], limits: UploadLimits) -> None:
    """Raises ``UploadError`` (413) when an image of ``size`` = (width, height) is over the pixel or shape limit."""
    width, height = size
    if width * height > limits.max_pixels:
        raise UploadError(TOO_LARGE, f"{name!r} is {width}×{height} = {width * height:,} pixels; the limit is "
                                     f"{limits.max_pixels:,} (shrink the image, or raise the server's pixel limit)")
    if max(width, height) > limits.max_aspect_ratio * max(min(width, height), 1):
        raise UploadError(TOO_LARGE, f"{name!r} is {width}×{height}, a long side more than "
                                     f"{limits.max_aspect_ratio:g}× its short side; crop it first")


def decode_image(upload: Upload, limits: UploadLimits = UploadLimits()) -> DecodedImage:
    """Checks and decodes one upload.

    Raises:
        UploadError: empty (422), not an image (415), over the pixel or aspect limit (413), truncated or otherwise
            undecodable (422).
    """
    if not upload.data:
        raise UploadError(UNPROCESSABLE, f"{upload.name!r} is empty (0 bytes)")
    with _header(upload) as header:
        mode, size = header.mode, header.size
    check_image_size(upload.name, size, limits)
    try:
        image = open_image(io.BytesIO(upload.data))
    except BadImageError as e:
        raise UploadError(UNPROCESSABLE, f"{upload.name!r} cannot be decoded ({e.reason}); is the file complete?") from None
    return DecodedImage(upload.name, image, mode, size)


def check_file_count(count: int, limits: UploadLimits) -> None:
    """Raises ``UploadError``: no images (400) or more than ``limits.max_files`` (413)."""
    if count == 0:
        raise UploadError(BAD_REQUEST, "the request has no images: send them as multipart field 'files' "
                                       "or as JSON {\"images\": [{\"name\": ..., \"data\": BASE64}]}")
    if count > limits.max_files:
        raise UploadError(TOO_LARGE, f"{count} images in one request; the limit is {limits.max_files} "
                                     "(split them over several requests)")


def decode_uploads(uploads: Sequence[Upload], limits: UploadLimits = UploadLimits()) -> list[DecodedImage]:
    """Checks the count, then decodes each upload in order; the first bad one raises its ``UploadError``."""
    check_file_count(len(uploads), limits)
    return [decode_image(u, limits) for u in uploads]


def uploads_from_base64(items: Sequence[tuple[str | None, str]]) -> list[Upload]:
    """``(name or None, base64 text)`` pairs → uploads; unnamed ones are called ``images[i]``.

    Raises:
        UploadError: 400 for text that is not base64 (a ``data:image/png;base64,`` prefix is accepted).
    """
    uploads = []
    for i, (name, text) in enumerate(items):
        label = name or f"images[{i}]"
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise UploadError(BAD_REQUEST, f"images[{i}].data ({label!r}) is not valid base64") from None
        uploads.append(Upload(label, data))
    return uploads


def check_content_length(value: str | None, limits: UploadLimits) -> None:
    """Raises ``UploadError`` for a ``Content-Length`` header over the limit (413) or not a number (400)."""
    if value is None:
        return
    try:
        length = int(value)
    except ValueError:
        raise UploadError(BAD_REQUEST, f"Content-Length {value!r} is not a number") from None
    if length > limits.max_request_bytes:
        raise _body_too_large(limits)


def _body_too_large(limits: UploadLimits) -> UploadError:
    return UploadError(TOO_LARGE, f"the request body is over the limit of {limits.max_request_bytes:,} bytes "
                                  "(send fewer or smaller images per request)")


ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class RequestSizeLimit:
    """ASGI middleware: a request body over ``limits.max_request_bytes`` gets a 413 JSON ``{"detail": ...}``.

    A declared ``Content-Length`` over the limit is refused before the app runs; a chunked body is counted as it
    arrives, and the app's read fails with :class:`UploadError` once it passes the limit (answered here when the
    app lets it through and has not started its response).
    """

    def __init__(self, app: ASGIApp, limits: UploadLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        try:
            length = headers.get(b"content-length")
            check_content_length(None if length is None else length.decode("latin-1"), self.limits)
        except UploadError as e:
            await send_error(send, e)
            return
        received, started = 0, False

        async def counting_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limits.max_request_bytes:
                    raise _body_too_large(self.limits)
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except UploadError as e:
            if started:
                raise
            await send_error(send, e)


async def send_error(send: Callable[[dict], Awaitable[None]], error: UploadError) -> None:
    """Sends ``error`` as a JSON response ``{"detail": message}`` with its status, through raw ASGI messages."""
    body = json.dumps({"detail": error.message}).encode()
    headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                          (b"connection", b"close")]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
