"""The application layer: commands, queries, the loop, prompts, providers and tools.

The top level holds only what every sub-package shares: ``errors``, ``ports`` (every
port, driven and driving), ``surface`` (the values surfaces exchange with the
application), ``config`` (opsloop.toml), ``settings`` (the environment) and ``visible``
(untrusted text for terminals). See docs/architecture.md.
"""
