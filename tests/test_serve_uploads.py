"""shoulders.serve.uploads: every bad upload becomes its UploadError status; good ones decode like files on disk."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shoulders.data.images import open_image
from shoulders.serve.uploads import (RequestSizeLimit, Upload, UploadError, UploadLimits, decode_image,
                                     decode_uploads, uploads_from_base64)


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def noise(mode: str = "RGB", size: tuple[int, int] = (20, 12)) -> Image.Image:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    return rgb if mode == "RGB" else rgb.convert(mode)


def status_of(upload: Upload, limits: UploadLimits = UploadLimits()) -> int:
    with pytest.raises(UploadError) as info:
        decode_image(upload, limits)
    assert info.value.message and repr(upload.name) in info.value.message  # says which file
    return info.value.status


@pytest.mark.parametrize("mode,fmt", [("RGB", "PNG"), ("L", "PNG"), ("RGBA", "PNG"), ("P", "GIF"),
                                      ("CMYK", "JPEG"), ("I;16", "PNG"), ("1", "BMP"), ("RGB", "WEBP")])
def test_decodes_every_mode_to_the_pixels_open_image_gives_for_the_file(tmp_path: Path, mode: str, fmt: str) -> None:
    data = encode(noise(mode), fmt)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(data)
    decoded = decode_image(Upload("x", data))
    assert decoded.image.mode == "RGB" and decoded.original_mode == mode and decoded.original_size == (20, 12)
    np.testing.assert_array_equal(np.asarray(decoded.image), np.asarray(open_image(path)))


def test_each_bad_upload_gets_its_status() -> None:
    png = encode(noise())
    assert status_of(Upload("empty.png", b"")) == 422
    assert status_of(Upload("notes.txt", b"hello, not an image")) == 415
    assert status_of(Upload("cut.png", png[: len(png) // 2])) == 422
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"  # a format PIL knows but uploads must not use
    assert status_of(Upload("x.eps", eps)) == 415
    assert status_of(Upload("big.png", png), UploadLimits(max_pixels=20 * 12 - 1)) == 413
    assert status_of(Upload("strip.png", encode(noise(size=(300, 2)))), UploadLimits(max_aspect_ratio=100)) == 413


def test_pixel_limit_is_checked_before_decoding() -> None:
    # 9000 × 9000 (81 M pixels) of one colour compresses to ~80 kB; decoded as RGB it would take 243 MB
    bomb = encode(Image.new("L", (9000, 9000)))
    assert len(bomb) < 200_000
    with pytest.raises(UploadError) as info:
        decode_image(Upload("bomb.png", bomb))
    assert info.value.status == 413 and "81,000,000 pixels; the limit is 40,000,000" in info.value.message


def test_file_count_limits() -> None:
    png = encode(noise())
    with pytest.raises(UploadError, match="no images") as none:
        decode_uploads([])
    assert none.value.status == 400
    with pytest.raises(UploadError, match="3 images in one request; the limit is 2") as many:
        decode_uploads([Upload(f"{i}.png", png) for i in range(3)], UploadLimits(max_files=2))
    assert many.value.status == 413
    assert [d.name for d in decode_uploads([Upload("a", png), Upload("b", png)])] == ["a", "b"]


def test_base64_uploads() -> None:
    png = encode(noise())
    text = base64.b64encode(png).decode()
    uploads = uploads_from_base64([("a.png", text), (None, "data:image/png;base64," + text)])
    assert [(u.name, u.data) for u in uploads] == [("a.png", png), ("images[1]", png)]
    with pytest.raises(UploadError, match=r"images\[0\].data .* not valid base64") as info:
        uploads_from_base64([(None, "%%%not base64%%%")])
    assert info.value.status == 400


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_files= must be positive"):
        UploadLimits(max_files=0)


async def _asgi_call(app, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, dict]:
    sent: list[dict] = []
    incoming = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> dict:
        return incoming.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    await app({"type": "http", "headers": headers}, receive, send)
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


async def _reading_app(scope, receive, send) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b'{"ok": true}'})


def test_request_size_limit_middleware() -> None:
    app = RequestSizeLimit(_reading_app, UploadLimits(max_request_bytes=100))
    assert asyncio.run(_asgi_call(app, [(b"content-length", b"50")], [b"x" * 50])) == (200, {"ok": True})
    status, body = asyncio.run(_asgi_call(app, [(b"content-length", b"101")], [b"x" * 101]))
    assert status == 413 and "over the limit of 100 bytes" in body["detail"]
    status, body = asyncio.run(_asgi_call(app, [], [b"x" * 60, b"x" * 60]))  # chunked: no Content-Length
    assert status == 413 and "over the limit" in body["detail"]
    status, body = asyncio.run(_asgi_call(app, [(b"content-length", b"lots")], [b""]))
    assert status == 400 and "not a number" in body["detail"]
