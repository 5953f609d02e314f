"""Deepfake video analysis: sampled frames, MTCNN faces, a CNN ensemble, Grad-CAM and reports."""
