"""The sync library: outbox, hybrid logical clock (protocol and agent come next)."""
