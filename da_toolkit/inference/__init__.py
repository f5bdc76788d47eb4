"""Inference: Predictor, prediction writers, video, export."""
