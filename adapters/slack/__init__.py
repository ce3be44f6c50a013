"""The Slack surface: mention opsloop in a channel (or DM it) and the loop runs in the thread.

``inbound`` (events in) and ``outbound`` (messages out) are the pure translations;
``progress`` shows a run in a thread (``stream`` streams the answer, ``thread`` holds the
values both share); ``app`` wires Bolt to the ``ChatService``; ``server`` holds the Web API
client, HTTP mode and Socket Mode; ``pacer`` keeps to Slack's posting rate.
"""
