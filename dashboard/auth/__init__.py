"""Authentication: the request guard, login and logout, users and API tokens."""
