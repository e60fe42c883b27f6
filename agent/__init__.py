"""The sync agent: delivers the outbox to the cloud, runs housekeeping, talks to systemd."""
