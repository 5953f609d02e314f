"""Recognise a video container by its first bytes, never by the file name.

Uploads are judged by content: an ``.mp4`` that is really a PNG, a ZIP or text is refused before
any decoder sees it, with a message that says what the file looks like instead.
"""

from __future__ import annotations

VIDEO_CONTAINERS = {"mp4", "mov", "webm_mkv", "avi", "mpeg_ts", "mpeg_ps", "flv", "ogg"}


def sniff(head: bytes) -> str:
    """A short name for what the first bytes look like ("mp4", "png", "zip", "unknown"...)."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        return "mov" if brand == b"qt  " else "mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm_mkv"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"\x47") and len(head) > 188 and head[188:189] == b"\x47":
        return "mpeg_ts"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg_ps"
    if head.startswith(b"FLV"):
        return "flv"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith((b"ID3", b"\xff\xfb", b"\xff\xf3", b"fLaC")):
        return "audio"
    if not head:
        return "empty"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head[:512]):
        return "text"
    return "unknown"


def is_video_container(kind: str) -> bool:
    return kind in VIDEO_CONTAINERS


SUFFIX = {
    "mp4": ".mp4",
    "mov": ".mov",
    "webm_mkv": ".mkv",
    "avi": ".avi",
    "mpeg_ts": ".ts",
    "mpeg_ps": ".mpg",
    "flv": ".flv",
    "ogg": ".ogv",
}

DESCRIPTION = {
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "gif": "a GIF image",
    "zip": "a ZIP archive",
    "pdf": "a PDF document",
    "audio": "an audio file",
    "wav": "a WAV audio file",
    "text": "a text file",
    "empty": "an empty file",
    "unknown": "not a recognised video format",
}
