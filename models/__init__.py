"""Speech to text to meaning: transcriber, encoders, phrase packs, classifier, scorecard. No web."""
