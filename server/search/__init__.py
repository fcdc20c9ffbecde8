"""Search across calls: every stored turn, live and audited, by stemmed words (:mod:`server.search.index`)."""
