"""Model components: encoders, decoders, DepthModel, presets, weights."""
