"""Who may do what: users, roles, tokens and page sessions, their store and the routes."""
