"""Who may make opsloop do what: pure decisions over opsloop.toml's policy."""
