"""Release tickets: the written rollback plan a canary is held to."""
