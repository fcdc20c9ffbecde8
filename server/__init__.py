"""FastAPI app, protocols, sessions, storage and the command line."""
