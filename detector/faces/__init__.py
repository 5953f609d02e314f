"""Faces: MTCNN detection, the quality gate, crops, identity embeddings and tracking."""
