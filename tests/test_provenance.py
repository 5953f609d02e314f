"""Provenance beside the face evidence (``detector.provenance``): C2PA content credentials signed
here with a throwaway CA, container metadata written here with PyAV, the findings, trust with and
without anchors, the isolated reader's limits, the hostile corpus, the CLI and the JSON record."""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector import cli
from detector.cli import common
from detector.errors import BadSettingsError
from detector.io import synthetic
from detector.io.isolated.decoder import DecodeLimits
from detector.provenance.findings import findings
from detector.provenance.model import (
    C2PA_STATES,
    Credentials,
    FileMetadata,
    load_trust_anchors,
    provenance_to_dict,
)
from detector.provenance.read import inspect_file
from detector.reporting.record import analysis_to_dict
from detector.types import Analysis
from tests.hostile import CASES

c2pa = pytest.importorskip("c2pa", reason="c2pa-python (requirements.txt) is not installed")
from cryptography import x509  # noqa: E402  (installed with c2pa-python)
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

AI_MADE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


# ---------------------------------------------------------------- a throwaway PKI


@dataclass(frozen=True)
class Pki:
    ca_pem: bytes
    chain_pem: bytes
    key_pem: bytes


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{cn} Org"),
        ]
    )


def _usage(sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not sign,
        crl_sign=not sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_pki(ca_name: str = "Test CA") -> Pki:
    """A CA and a leaf it issues, as the C2PA profile wants them (ES256, emailProtection EKU,
    SKI/AKI), valid around now; the key as PKCS#8 PEM."""
    now = dt.datetime.now(dt.UTC)
    pem = serialization.Encoding.PEM
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(sign=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("Test Signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Pki(ca.public_bytes(pem), leaf.public_bytes(pem) + ca.public_bytes(pem), key_pem)


def sign(src: Path, dst: Path, pki: Pki, actions: list[dict]) -> Path:
    manifest = {
        "claim_generator_info": [{"name": "provenance-tests", "version": "1.0"}],
        "title": src.name,
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}],
    }
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, pki.chain_pem, pki.key_pem, None)
    signer = c2pa.Signer.from_info(info)
    with open(src, "rb") as s, open(dst, "w+b") as d:
        c2pa.Builder(manifest).sign(signer, "video/mp4", s, d)
    return dst


def flip_bytes(src: Path, dst: Path, marker: bytes, offset: int) -> Path:
    data = bytearray(src.read_bytes())
    at = data.find(marker) + offset
    for i in range(at, at + 16):
        data[i] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def tagged_clip(path: Path, created: str, audio_s: float = 0.2, seconds: float = 2.0) -> Path:
    """H.264 + a short AAC track, with a container creation time; Lavf writes its encoder tag."""
    fps = 25
    with av.open(str(path), "w") as out:
        out.metadata["creation_time"] = created
        video = out.add_stream("libx264", rate=Fraction(fps))
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        video.options = {"preset": "ultrafast"}
        audio = out.add_stream("aac", rate=48000)
        for img in synthetic.face_frames(64, 64, round(seconds * fps), face_size=48):
            for p in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in video.encode():
            out.mux(p)
        for i in range(round(audio_s * 48000 / 1024)):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 48000, i * 1024
            for p in audio.encode(frame):
                out.mux(p)
        for p in audio.encode():
            out.mux(p)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("provenance")
    pki, other = make_pki(), make_pki("Other CA")
    plain = synthetic.astronaut_clip(root / "plain.mp4", seconds=2)
    signed = sign(
        plain,
        root / "signed.mp4",
        pki,
        [{"action": "c2pa.created", "digitalSourceType": AI_MADE}, {"action": "c2pa.edited"}],
    )
    (root / "ca.pem").write_bytes(pki.ca_pem)
    (root / "other.pem").write_bytes(other.ca_pem)
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "plain": plain,
        "signed": signed,
        "tampered": flip_bytes(signed, root / "tampered.mp4", b"mdat", 400),
        "broken_manifest": flip_bytes(signed, root / "broken.mp4", b"c2pa.signature", 8),
        "tagged": tagged_clip(root / "tagged.mp4", future),
        "ca": root / "ca.pem",
        "other": root / "other.pem",
    }


def codes(p) -> set[str]:
    return {f.code for f in p.findings}


# ---------------------------------------------------------------- content credentials


def test_an_unsigned_clip_has_no_credentials_and_its_metadata_is_read(files):
    p = inspect_file(files["plain"])
    assert p.ok and p.c2pa.state == "absent"
    m = p.metadata
    assert m.major_brand == "isom" and "isom" in m.compatible_brands
    assert m.encoder.startswith("Lavf")
    assert m.frame_rate_mode == "constant" and m.frame_rate_fps == pytest.approx(25)
    assert m.container_duration_s == pytest.approx(2, abs=0.1)
    assert not m.has_audio and m.rotation_deg == 0
    assert [s.kind for s in m.streams] == ["video"]
    assert {"c2pa_absent", "generic_encoder", "no_audio"} <= codes(p)
    generic = next(f for f in p.findings if f.code == "generic_encoder")
    assert generic.severity == "notable" and "Lavf" in generic.text


def test_a_signed_clip_shows_signer_actions_and_the_ai_source_type(files):
    p = inspect_file(files["signed"])
    c = p.c2pa
    assert c.state == "present" and c.trust == "unknown"
    assert c.signer == "Test Signer" and c.issuer == "Test CA (Test CA Org)"
    assert c.signer_organization == "Test Signer Org" and " to " in c.certificate_valid
    assert c.claim_generator == "provenance-tests 1.0"
    assert [a.action for a in c.actions] == ["c2pa.created", "c2pa.edited"]
    assert c.digital_source_types == (AI_MADE,)
    assert not [e for e in c.errors if e.code != "signingCredential.untrusted"]
    found = {f.code: f for f in p.findings}
    assert found["c2pa_ai_source"].severity == "notable"
    assert "made by AI" in found["c2pa_ai_source"].text
    assert found["c2pa_edited"].severity == "notable"
    assert "unknown" in found["c2pa_trust_unknown"].text


def test_trust_needs_the_anchors_that_issued_the_signer(files):
    trusted = inspect_file(files["signed"], trust=load_trust_anchors(files["ca"]))
    assert trusted.c2pa.state == "present" and trusted.c2pa.trust == "trusted"
    assert "c2pa_trusted" in codes(trusted)
    assert trusted.trust_anchors == "ca.pem (1 certificate)"
    other = inspect_file(files["signed"], trust=load_trust_anchors(files["other"]))
    assert other.c2pa.state == "present" and other.c2pa.trust == "untrusted"
    untrusted = next(f for f in other.findings if f.code == "c2pa_untrusted")
    assert untrusted.severity == "notable" and "not among the trust anchors" in untrusted.text


def test_a_file_changed_after_signing_has_invalid_credentials(files):
    p = inspect_file(files["tampered"], trust=load_trust_anchors(files["ca"]))
    assert p.ok and p.c2pa.state == "invalid"
    assert "assertion.bmffHash.mismatch" in {e.code for e in p.c2pa.errors}
    invalid = next(f for f in p.findings if f.code == "c2pa_invalid")
    assert invalid.severity == "notable" and "changed after it was signed" in invalid.text
    assert "c2pa_trusted" not in codes(p)


def test_a_damaged_manifest_is_a_typed_state_not_a_crash(files):
    p = inspect_file(files["broken_manifest"])
    assert p.c2pa.state in ("invalid", "unchecked")
    assert p.c2pa.message


def test_bad_trust_anchors_are_refused_in_words(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(BadSettingsError, match="PEM"):
        load_trust_anchors(bad)
    with pytest.raises(BadSettingsError):
        load_trust_anchors(tmp_path / "missing.pem")


# ---------------------------------------------------------------- container metadata


def test_future_creation_time_generic_encoder_and_durations_that_disagree(files):
    p = inspect_file(files["tagged"])
    m = p.metadata
    assert m.has_audio and {s.kind for s in m.streams} == {"video", "audio"}
    assert {"creation_in_future", "durations_disagree", "generic_encoder"} <= codes(p)
    assert "no_audio" not in codes(p)
    assert m.modification_time  # the mvhd box was read
    notable = [f for f in p.findings if f.severity == "notable"]
    assert p.findings[: len(notable)] == tuple(notable)  # notable first


def test_variable_frame_rate_and_a_lying_header(hostile):
    vfr = inspect_file(hostile("variable_frame_rate"))
    assert vfr.metadata.frame_rate_mode == "variable" and "variable_frame_rate" in codes(vfr)
    lying = inspect_file(hostile("avi_lying_header"))
    assert lying.c2pa.state == "absent"  # AVI has a C2PA binding
    assert "durations_disagree" in codes(lying)
    short = inspect_file(hostile("avi_lying_short"))  # two frames, a header claiming 100 s
    assert short.metadata.video_packets_duration_s == pytest.approx(0.2, abs=0.05)
    assert "durations_disagree" in codes(short)


def test_device_tags_are_read_and_a_rewrite_by_ffmpeg_is_noted(tmp_path):
    path = tmp_path / "phone.mov"
    with av.open(str(path), "w", options={"movflags": "use_metadata_tags"}) as out:
        out.metadata["com.apple.quicktime.make"] = "Apple"
        out.metadata["com.apple.quicktime.model"] = "iPhone 12"
        out.metadata["com.apple.quicktime.software"] = "16.1"
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        for img in synthetic.face_frames(64, 64, 10, face_size=48):
            for p in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in video.encode():
            out.mux(p)
    p = inspect_file(path)
    m = p.metadata
    assert (m.major_brand, m.device_make, m.device_model, m.device_software) == (
        "qt",
        "Apple",
        "iPhone 12",
        "16.1",
    )
    found = {f.code: f for f in p.findings}
    assert "Apple iPhone 12" in found["device"].text
    assert found["device_tags_rewritten"].severity == "notable"


def test_dates_out_of_order_are_found_by_the_pure_rules():
    meta = FileMetadata(
        creation_time="2024-05-02T10:00:00Z",
        modification_time="2024-05-01T10:00:00Z",
        device_make="Apple",
        device_model="iPhone 12",
        has_audio=True,
    )
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    found = {f.code: f for f in findings(Credentials("absent"), meta, now=now)}
    assert found["created_after_modified"].severity == "notable"
    assert "creation_in_future" not in found
    assert "Apple iPhone 12" in found["device"].text


# ---------------------------------------------------------------- untrusted input


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_corpus_ends_in_a_typed_state(name, hostile):
    p = inspect_file(hostile(name), name=CASES[name].display_name)
    assert p.status in {"ok", "unreadable", "no_video_stream", "too_large", "timeout"}
    assert p.c2pa.state in C2PA_STATES
    assert p.findings and all(f.severity in ("info", "notable") for f in p.findings)
    json.dumps(provenance_to_dict(p))
    if not p.ok:
        assert p.message.strip() and p.metadata is None


def test_the_reader_runs_under_the_decoder_limits(files):
    starved = inspect_file(files["plain"], limits=DecodeLimits(memory_mb=64))
    assert starved.status in ("unreadable", "too_large") and starved.message
    hurried = inspect_file(files["plain"], limits=DecodeLimits(total_s=0.01, stall_s=0.01))
    assert hurried.status == "timeout"


# ---------------------------------------------------------------- CLI and JSON record


def test_cli_prints_the_provenance_document(files, capsys):
    code = cli.main(
        ["provenance", str(files["signed"]), "--json", "--trust-anchors", str(files["ca"])]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == common.EXIT_OK
    assert {"c2pa", "metadata", "findings"} <= set(doc)
    assert doc["c2pa"]["state"] == "present" and doc["c2pa"]["trust"] == "trusted"
    assert doc["metadata"]["major_brand"] == "isom"
    assert {f["severity"] for f in doc["findings"]} <= {"info", "notable"}


def test_cli_provenance_of_an_unreadable_file(hostile, capsys):
    code = cli.main(["provenance", str(hostile("random_bytes")), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == common.EXIT_NO_VERDICT
    assert doc["status"] == "unreadable" and doc["c2pa"]["state"] == "unchecked"


def test_cli_refuses_a_missing_trust_list(files, tmp_path, capsys):
    code = cli.main(["provenance", str(files["plain"]), "--trust-anchors", str(tmp_path / "x")])
    assert code == common.EXIT_USAGE


def test_cli_analyze_json_carries_provenance_with_the_trust_anchors(files, capsys):
    argv = ["analyze", str(files["signed"]), "--json", "--models", "meso4_df"]
    code = cli.main([*argv, "--sampling", "even:4", "--trust-anchors", str(files["ca"])])
    doc = json.loads(capsys.readouterr().out)
    assert code == common.EXIT_OK and doc["verdict"] is not None
    assert doc["provenance"]["c2pa"]["state"] == "present"
    assert doc["provenance"]["c2pa"]["trust"] == "trusted"
    assert doc["provenance"]["trust_anchors"] == "ca.pem (1 certificate)"


def test_the_analysis_record_carries_provenance_without_changing_other_keys(files):
    p = inspect_file(files["tampered"])
    a = Analysis(status="no_faces", message="none", video=None, sampling="1fps", provenance=p)
    doc = analysis_to_dict(a)
    assert doc["provenance"]["c2pa"]["state"] == "invalid"
    assert doc["verdict"] is None
    bare = analysis_to_dict(Analysis(status="no_faces", message="", video=None, sampling="1fps"))
    assert bare["provenance"] is None
    assert set(doc) == set(bare)


def test_the_analyzer_reads_provenance_even_when_the_file_is_refused(analyzer, hostile):
    a = analyzer.analyze(hostile("png_renamed"))
    assert a.status == "unreadable"
    assert a.provenance is not None and a.provenance.status == "unreadable"


def test_the_pdf_has_a_file_and_provenance_section(files):
    from pypdf import PdfReader

    from detector.reporting.pdf import render_pdf

    p = inspect_file(files["signed"], trust=load_trust_anchors(files["other"]))
    a = Analysis(status="no_faces", message="none", video=None, sampling="1fps", provenance=p)
    reader = PdfReader(io.BytesIO(render_pdf(a)))
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    assert "File & provenance" in text
    assert "untrusted" in text and "Test Signer" in text
    assert "trainedAlgorithmicMedia" in text and "c2pa.edited" in text
    assert "notable" in text and "Writing application" in text


# ---------------------------------------------------------------- the app


def _app_with(analysis: Analysis, key: tuple, video: bytes | None = None):
    from streamlit.testing.v1 import AppTest

    from detector.settings import PROJECT_ROOT
    from pages import state

    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.session_state[state.ANALYSES] = {key: analysis}
    at.session_state[state.CURRENT] = key
    if video is not None:
        at.session_state[state.VIDEOS] = {key: video}
    return at


def test_the_analyze_page_shows_file_and_provenance(files, monkeypatch):
    from pages import ui

    monkeypatch.setattr(ui, "start_preload", lambda: None)
    p = inspect_file(files["tampered"])
    a = Analysis(
        status="no_faces", message="clip.mp4: none", video=None, sampling="1fps", provenance=p
    )
    at = _app_with(a, ("x", "1fps", ("meso4_df",)))
    at.run()
    assert not at.exception, at.exception
    assert "File & provenance" in [h.value for h in at.subheader]
    assert any("present but invalid" in e.value for e in at.error)
    warnings = " ".join(w.value for w in at.warning)
    assert "changed after it was signed" in warnings and "made by AI" in warnings


def test_new_trust_anchors_reread_the_credentials_without_inference(files, monkeypatch):
    from pages import state, ui

    monkeypatch.setattr(ui, "start_preload", lambda: None)
    monkeypatch.setattr(ui, "get_analyzer", lambda *_: pytest.fail("inference ran"))
    p = inspect_file(files["signed"])
    a = Analysis(
        status="no_faces", message="clip.mp4: none", video=None, sampling="1fps", provenance=p
    )
    key = ("y", "1fps", ("meso4_df",))
    at = _app_with(a, key, files["signed"].read_bytes())
    at.run()
    assert "c2pa_trust_unknown" in codes(p)
    at.session_state[state.TRUST] = load_trust_anchors(files["ca"])
    at.run()
    assert not at.exception, at.exception
    assert any("present and intact" in s.value for s in at.success)
    texts = " ".join(str(t.value) for t in at.table)
    assert "trusted: the signer's certificate chains" in texts


@given(
    edits=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8
    ),
    cut=st.floats(0.3, 1.0),
)
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_fuzzed_signed_files_end_in_a_typed_state(files, tmp_path_factory, edits, cut):
    data = bytearray(files["signed"].read_bytes())
    start = data.find(b"jumb")  # aim at the manifest store as much as at the rest
    for where, value in edits:
        at = start + int(where * 4096) if where < 0.5 else int(where * len(data))
        data[min(at, len(data) - 1)] = value
    path = tmp_path_factory.mktemp("fuzz") / "clip.mp4"
    path.write_bytes(bytes(data[: max(64, int(cut * len(data)))]))
    p = inspect_file(path)
    assert p.status in {"ok", "unreadable", "too_large", "timeout"} and p.c2pa.state in C2PA_STATES
    assert p.findings
