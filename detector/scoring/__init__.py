"""Scoring face crops: the ensemble, the CPU runtime (precision, frozen graphs, workers), Grad-CAM."""
