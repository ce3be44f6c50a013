"""The Slack surface: mention opsloop in a channel (or DM it) and the loop runs in the thread.

``translate`` (events in) and ``render`` (messages out) are the pure translations;
``progress`` shows a run in a thread; ``app`` wires Bolt to the ``ChatService``;
``server`` holds the Web API client, HTTP mode and Socket Mode.
"""
