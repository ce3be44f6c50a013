"""Discord surface: DM opsloop (or mention it in an enabled server) and get the loop there.

``inbound`` (message -> command) and ``outbound``/``chunking`` (result -> messages) are pure
translations; ``surface`` and ``client`` are the discord.py glue; ``progress`` shows the loop.
"""
