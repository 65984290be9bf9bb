"""The room's join link as a QR code, drawn as inline SVG (qrcode's pure-Python SVG image: no PIL, no files,
nothing fetched), so a phone can join by pointing its camera at the projector."""

from __future__ import annotations

import qrcode
import qrcode.constants
import qrcode.image.svg

MAX_URL = 512  # a join link is short; refuse anything that would make a dense, hard-to-scan code


def qr_matrix(url: str, border: int = 4) -> list[list[bool]]:
    """The QR modules for url (True = dark), including the quiet zone of `border` modules."""
    return _qr(url, border).get_matrix()


def qr_svg(url: str, border: int = 4) -> str:
    """An <svg> element (one path, one square per dark module) that scales to its container's width.
    Error correction M (15 %) survives a projector's glare; the 4-module border is the quiet zone the
    standard asks for, which phone cameras need to find the code."""
    qr = _qr(url, border)
    image = qr.make_image(image_factory=qrcode.image.svg.SvgPathFillImage,
                          style="width:100%;height:auto;display:block", role="img",
                          **{"aria-label": f"QR code for {url}"})
    return image.to_string(encoding="unicode")


def _qr(url: str, border: int) -> qrcode.QRCode:
    if not isinstance(url, str) or not url.strip():
        raise ValueError("The join link is empty: there is nothing to put in the QR code.")
    if len(url) > MAX_URL:
        raise ValueError(f"The join link is {len(url)} characters; a QR code here takes at most {MAX_URL}.")
    qr = qrcode.QRCode(border=border, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(url)
    qr.make(fit=True)
    return qr
