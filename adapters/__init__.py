"""Chat surfaces (Slack, Discord, the terminal): each translates platform events into
application commands and results into platform messages, nothing more."""
