"""The hub's side of over-the-air updates: when to check, when to install, commit or roll back (see ota/)."""
