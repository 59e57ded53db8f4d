"""The OAuth 2 protocol core: pure functions and types, standard library only.

Nothing here does I/O, so every rule can be tested from a table and reused by the server, the guard and
the client alike.
"""
