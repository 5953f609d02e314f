"""Recognise a video container (or an audio file) by its first bytes, never by the file name.

Files are judged by content: an ``.mp4`` that is really a PNG, a ZIP or text is refused before any
decoder sees it, with a message that says what the file looks like instead. Only the containers
listed in :data:`DEMUXER` are ever opened, and always with that demuxer forced: FFmpeg's own
format probing would also accept playlists (HLS, ``ffconcat``) that make it open other files or
URLs, a well-known way to leak local files through a "video".
"""

from __future__ import annotations

import re

from detector.errors import VideoReadError

# Sniffed kind -> the FFmpeg demuxer forced when opening it.
DEMUXER = {
    "mp4": "mov",
    "mov": "mov",
    "webm_mkv": "matroska",
    "avi": "avi",
    "mpeg_ts": "mpegts",
    "mpeg_ps": "mpeg",
    "flv": "flv",
    "ogg": "ogg",
    "asf": "asf",
    "y4m": "yuv4mpegpipe",
    # audio-only files: opened so that their voice can be judged (the faces get "no video stream")
    "wav": "wav",
    "mp3": "mp3",
    "flac": "flac",
    "aac": "aac",
}

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")


def sniff(head: bytes) -> str:
    """A short name for what the first bytes look like ("mp4", "png", "zip", "unknown"...)."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "heif"
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
    if len(head) > 196 and head[4:5] == b"\x47" and head[196:197] == b"\x47":
        return "mpeg_ts"  # M2TS (Blu-ray, AVCHD): 192-byte packets
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg_ps"
    if head.startswith(b"FLV"):
        return "flv"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(_ASF_GUID):
        return "asf"
    if head.startswith(b"YUV4MPEG2 "):
        return "y4m"
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
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF2):
        return "mp3"  # an ID3 tag, or an MPEG-1/2 Layer III frame header
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "aac"  # an ADTS frame header (a raw AAC stream)
    if not head:
        return "empty"
    if head.lstrip().startswith(b"#EXTM3U"):
        return "playlist"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head[:512]):
        return "text"
    return "unknown"


def require_media(head: bytes, name: str = "upload") -> str:
    """The sniffed kind of a file this tool opens (a video container or an audio file), or
    :class:`VideoReadError` saying what the file is instead."""
    kind = sniff(head)
    if kind in DEMUXER:
        return kind
    if kind in DESCRIPTION:
        raise VideoReadError(f"{name}: this is {DESCRIPTION[kind]}, not a video file")
    raise VideoReadError(
        f"{name}: not a recognised video format (supported: MP4/MOV, MKV/WebM, AVI, "
        "MPEG-TS/PS, FLV, Ogg, ASF/WMV, Y4M; for the voice alone also M4A, WAV, MP3, FLAC, AAC)"
    )


def declared_frame_size(head: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) a raw-video header declares before any frame (None for other formats).

    A YUV4MPEG2 header can declare any size and FFmpeg sizes its packets from it, so the size is
    checked here, before FFmpeg reads a byte of frame data.
    """
    if kind != "y4m":
        return None
    line = head.split(b"\n", 1)[0].decode("ascii", "replace")
    w = re.search(r" W(\d+)", line)
    h = re.search(r" H(\d+)", line)
    return (int(w.group(1)), int(h.group(1))) if w and h else None


SUFFIX = {
    "mp4": ".mp4",
    "mov": ".mov",
    "webm_mkv": ".mkv",
    "avi": ".avi",
    "mpeg_ts": ".ts",
    "mpeg_ps": ".mpg",
    "flv": ".flv",
    "ogg": ".ogv",
    "asf": ".wmv",
    "y4m": ".y4m",
    "wav": ".wav",
    "mp3": ".mp3",
    "flac": ".flac",
    "aac": ".aac",
}

DESCRIPTION = {
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "gif": "a GIF image",
    "heif": "a HEIF/AVIF image",
    "zip": "a ZIP archive",
    "pdf": "a PDF document",
    "playlist": "an HLS playlist (a list of links to other files)",
    "text": "a text file",
    "empty": "an empty file",
}
