"""Printable QR codes for tokens (segno; no Pillow needed)."""

from __future__ import annotations

import base64
import io

import segno

ERROR_LEVEL = "m"  # 15 % recovery: survives a scuffed card or a glare spot


def make(token: str) -> segno.QRCode:
    # boost_error=False keeps level M (segno would otherwise raise it when space allows)
    return segno.make_qr(token, error=ERROR_LEVEL, boost_error=False)


def png_bytes(token: str, scale: int = 8) -> bytes:
    buf = io.BytesIO()
    make(token).save(buf, kind="png", scale=scale, border=4)
    return buf.getvalue()


def svg_text(token: str, scale: int = 8) -> str:
    buf = io.BytesIO()
    make(token).save(buf, kind="svg", scale=scale, border=4, xmldecl=False)
    return buf.getvalue().decode()


def png_data_uri(token: str, scale: int = 8) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(token, scale)).decode()


def save(token: str, path: str, scale: int = 10) -> None:
    make(token).save(path, scale=scale, border=4)
