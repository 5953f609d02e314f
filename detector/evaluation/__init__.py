"""Measuring models on labelled folders: metrics, datasets, evaluation."""
