"""Uploaded files → RGB images, with limits and messages a person can act on.

Stands in for the serve command's upload decoding until that lands; the studio calls only ``decode_upload`` and
``UploadError``, so the two can be swapped without touching the pages.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from ..data.images import IMAGE_EXTENSIONS, to_rgb

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # one photo from a phone is 3-8 MB; 20 MB leaves room without inviting abuse
MAX_PIXELS = 40_000_000  # decoded size cap (a 40 MP image is ~120 MB of RGB): refuses decompression bombs


class UploadError(ValueError):
    """An upload that cannot be used, with the HTTP status that says why (413 too large, 415 not an image)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def decode_upload(data: bytes, filename: str = "upload") -> Image.Image:
    """Decodes one uploaded file into an RGB image (EXIF orientation applied).

    Raises:
        UploadError: empty, larger than ``MAX_UPLOAD_BYTES``, more than ``MAX_PIXELS`` pixels, or not an image.
    """
    if not data:
        raise UploadError(f"{filename} is empty (0 bytes)")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"{filename} is too large: {len(data) / 2**20:.1f} MB, the limit is "
                          f"{MAX_UPLOAD_BYTES / 2**20:.0f} MB; resize or compress it", status=413)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise UploadError(f"{filename} is {img.width}×{img.height} pixels, more than the "
                                      f"{MAX_PIXELS / 1e6:.0f} MP limit; resize it", status=413)
                img.load()
                return to_rgb(ImageOps.exif_transpose(img))
    except UploadError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for files that are not images
        kinds = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
        why = "its content is in no image format" if isinstance(exc, UnidentifiedImageError) \
            else f"{type(exc).__name__}: {exc}"
        raise UploadError(f"{filename} is not an image that can be read ({why}); use one of: {kinds}",
                          status=415) from None
