"""The voice: the clip's audio track judged apart from the faces (issue 18).

``decode`` (16 kHz mono in the sandboxed decoder child, bounded), ``vad`` (Silero VAD from its
package's safetensors), ``aasist`` (the AASIST network), ``score`` (speech windows, the audio
member, the voice verdict with its own calibrated threshold), ``records`` (frozen records) and
``reporting`` (JSON part, "Faces: …; Voice: …" line, PDF section). Never imports Streamlit.
"""
