"""What provenance reading found, as plain data: content credentials, container metadata, findings, trust anchors."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

C2PA_STATES = ("present", "absent", "invalid", "unchecked")


TRUST_WORDS = {
    "trusted": "trusted: the signer's certificate chains to a trust anchor you provided",
    "untrusted": "untrusted: the signer's certificate does not chain to the trust anchors you "
    "provided",
    "unknown": "unknown: no trust anchors were provided, so the signer cannot be vouched for",
}


C2PA_WORDS = {
    "present": "Content credentials present and intact",
    "absent": "No content credentials",
    "invalid": "Content credentials present but invalid",
    "unchecked": "Content credentials not checked",
}


@dataclass(frozen=True)
class Finding:
    """One observation: ``severity`` is "info" or "notable"; ``text`` is one plain sentence."""

    severity: str
    code: str
    text: str


@dataclass(frozen=True)
class C2paAction:
    action: str
    when: str = ""
    software_agent: str = ""
    digital_source_type: str = ""


@dataclass(frozen=True)
class C2paIngredient:
    title: str
    format: str = ""
    relationship: str = ""


@dataclass(frozen=True)
class StatusCode:
    """A C2PA validation status: its code (e.g. ``assertion.bmffHash.mismatch``) and words."""

    code: str
    explanation: str = ""


@dataclass(frozen=True)
class Credentials:
    """The C2PA reading. ``state``: "present" (found and intact), "absent", "invalid" (found but
    it does not validate: the file changed after signing, or the manifest is damaged) or
    "unchecked" (the container has no C2PA binding, or could not be read); ``message`` says why.

    ``signer`` is the signing certificate's subject, ``issuer`` the authority that issued that
    certificate (both as the certificate states them: anyone can write any name into a
    certificate they issue themselves). ``trust`` is "trusted", "untrusted" or "unknown" (no
    trust anchors given); it is only meaningful when credentials were found. ``signing_time`` is
    empty without a time-stamp.
    """

    state: str
    message: str = ""
    claim_generator: str = ""
    title: str = ""
    signer: str = ""
    signer_organization: str = ""
    issuer: str = ""
    certificate_valid: str = ""
    signing_time: str = ""
    validation_state: str = ""
    trust: str = "unknown"
    errors: tuple[StatusCode, ...] = ()
    actions: tuple[C2paAction, ...] = ()
    ingredients: tuple[C2paIngredient, ...] = ()
    digital_source_types: tuple[str, ...] = ()
    manifest_count: int = 0


@dataclass(frozen=True)
class StreamMetadata:
    index: int
    kind: str
    codec: str = ""
    handler_name: str = ""
    encoder: str = ""
    creation_time: str = ""
    duration_s: float | None = None
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FileMetadata:
    """What the container says about itself. Empty strings and None mean "not stated".

    ``frame_rate_mode`` is "constant", "variable" or "unknown" (from the video packets' time
    stamps); ``video_packets_duration_s`` is where those time stamps really end, to compare with
    the durations the container declares. ``modification_time`` comes from an MP4/MOV ``mvhd``.
    """

    container: str = ""
    major_brand: str = ""
    minor_version: str = ""
    compatible_brands: tuple[str, ...] = ()
    encoder: str = ""
    creation_time: str = ""
    modification_time: str = ""
    device_make: str = ""
    device_model: str = ""
    device_software: str = ""
    rotation_deg: int | None = None
    frame_rate_fps: float | None = None
    frame_rate_mode: str = "unknown"
    container_duration_s: float | None = None
    video_packets_duration_s: float | None = None
    has_audio: bool = False
    streams: tuple[StreamMetadata, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Provenance:
    """The provenance step's record. ``status`` is "ok" or why the file could not be read
    ("unreadable", "timeout", "too_large"); credentials and metadata are then "unchecked" / None.
    ``trust_anchors`` describes the trust list used ("" when none was given)."""

    status: str
    message: str
    c2pa: Credentials
    metadata: FileMetadata | None
    findings: tuple[Finding, ...] = ()
    trust_anchors: str = ""
    trust_anchors_sha256: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class TrustAnchors:
    """A PEM bundle of trust anchors the analyst chose (nothing is trusted by default)."""

    pem: bytes
    label: str = "trust anchors"

    @property
    def count(self) -> int:
        return self.pem.count(b"-----BEGIN CERTIFICATE-----")

    @property
    def sha256(self) -> str:
        import hashlib

        return hashlib.sha256(self.pem).hexdigest()

    def describe(self) -> str:
        return f"{self.label} ({self.count} certificate{'s' if self.count != 1 else ''})"


def load_trust_anchors(path: Path) -> TrustAnchors:
    """Read a PEM file of CA certificates.

    Raises:
        BadSettingsError: missing, unreadable, or with no PEM certificate in it.
    """
    from detector.errors import BadSettingsError

    path = Path(path)
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise BadSettingsError(f"trust anchors {path}: {exc.strerror or exc}") from None
    return trust_anchors_from_bytes(pem, path.name)


def trust_anchors_from_bytes(pem: bytes, label: str = "trust anchors") -> TrustAnchors:
    """Trust anchors from PEM bytes (an upload); :class:`BadSettingsError` if none is in it."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from detector.errors import BadSettingsError

    try:
        if len(pem) > 4 << 20:
            raise ValueError("too large")
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise BadSettingsError(
            f"{label}: no readable PEM certificate found (expected a .pem bundle of CA "
            "certificates)"
        ) from None
    return TrustAnchors(b"".join(c.public_bytes(Encoding.PEM) for c in certs), label)


def provenance_to_dict(p: Provenance) -> dict:
    """The JSON form: ``{"status", "message", "c2pa": {"state", ...}, "metadata", "findings",
    "trust_anchors"}``."""
    c2pa = asdict(p.c2pa)
    c2pa["trust_words"] = TRUST_WORDS[p.c2pa.trust]
    meta = asdict(p.metadata) if p.metadata is not None else None
    if meta is not None:
        meta["tags"] = dict(p.metadata.tags)
        for s, stream in zip(meta["streams"], p.metadata.streams, strict=True):
            s["tags"] = dict(stream.tags)
    return {
        "status": p.status,
        "message": p.message,
        "c2pa": c2pa,
        "metadata": meta,
        "findings": [asdict(f) for f in p.findings],
        "trust_anchors": p.trust_anchors or None,
    }


# Sniffed container kind -> the MIME type c2pa reads it as; other containers have no C2PA binding.
C2PA_MIME = {"mp4": "video/mp4", "mov": "video/quicktime", "avi": "video/x-msvideo"}


# Failure codes that are about trust, not integrity: the library still calls the manifest "Valid".
TRUST_CODES = {"signingCredential.untrusted", "signingCredential.trusted"}


_MAX_TEXT = 300  # characters kept of any string read from the file


MAX_ITEMS = 100  # actions, ingredients, tags, streams kept


QT_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)


def parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def clean_text(value, limit: int = _MAX_TEXT) -> str:
    """A printable string of bounded length from anything the file supplied."""
    if value is None:
        return ""
    s = value if isinstance(value, str) else str(value)
    s = "".join(ch if ch.isprintable() else " " for ch in s[: limit * 2]).strip()
    return s[:limit]
