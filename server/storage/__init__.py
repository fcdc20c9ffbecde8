"""Database plumbing shared by the stores."""
