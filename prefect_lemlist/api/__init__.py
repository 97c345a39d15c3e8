"""Everything about one HTTP exchange with lemlist: the client, its models, errors and the
workflow table."""
