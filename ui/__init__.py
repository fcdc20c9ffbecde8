"""Static pages served by the server."""
