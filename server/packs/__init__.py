"""Phrase packs on the server: versions in the store, classifiers per version, publishing,
the trainer routes and labelled-call runs.
"""
