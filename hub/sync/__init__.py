"""The link to the commune cloud: outbox uploader (and, in later issues, command inbox and live sessions)."""
