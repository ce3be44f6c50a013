"""The terminal surface: ``repl`` (``opsloop chat``) reads lines, ``progress`` draws the
loop, ``outbound`` renders results; the same application as Slack and Discord."""
