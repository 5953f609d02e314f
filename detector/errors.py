"""Typed errors. Each carries a ``status`` code that the CLI's JSON and the app show in words.

Nothing in this project turns an error into a score: a clip with no face, an unreadable file or a
too-short video ends as one of these, never as ``p_fake = 0.5``.
"""

from __future__ import annotations


class DetectorError(Exception):
    """Base class; ``status`` is the machine-readable state, the message is for people."""

    status = "error"


class VideoReadError(DetectorError):
    """The file could not be opened or decoded as a video."""

    status = "unreadable"


class NoVideoStreamError(VideoReadError):
    """The container opened but holds no video stream (e.g. audio only)."""

    status = "no_video_stream"


class UnsupportedCodecError(VideoReadError):
    """The video stream uses a codec the decoder cannot handle."""

    status = "unsupported_codec"


class VideoTooShortError(DetectorError):
    """Fewer decodable frames than the analysis needs."""

    status = "too_short"


class VideoTooLargeError(DetectorError):
    """Dimensions, duration or size beyond the configured limits (decompression-bomb guard)."""

    status = "too_large"


class DecodeTimeoutError(DetectorError):
    """Decoding did not finish within the time limit."""

    status = "timeout"


class NoFacesFoundError(DetectorError):
    """Frames were decoded but no face was found in any of them."""

    status = "no_faces"


class UnknownModelError(DetectorError, KeyError):
    """A model name that is not in the registry."""

    status = "bad_settings"

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BadSettingsError(DetectorError, ValueError):
    """Invalid analysis settings (sampling spec, weights, aggregation name...)."""

    status = "bad_settings"


class WeightsMissingError(DetectorError):
    """A model's weights file or manifest is absent."""

    status = "weights_missing"


class WeightsIntegrityError(DetectorError):
    """A weights file failed its sha256 check or is not safetensors."""

    status = "weights_tampered"
