"""Sound only: decoding, channels, codecs, resampling, voice activity. No ML models, no web."""
