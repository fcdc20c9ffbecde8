"""Database plumbing shared by the stores: one interface (:mod:`.database`), SQLite (the one-box default,
:mod:`.sqlite`) and PostgreSQL (several servers on one database, :mod:`.postgres`), and the stores' base
class with schema versions and migrations (:mod:`.tables`). Imports nothing above it."""
