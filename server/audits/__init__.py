"""QA audits of recordings: upload jobs, their store, the report writers and the routes."""
