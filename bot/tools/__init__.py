"""Tools: what a block may reach through the broker (issue 11), with redaction (issue 12).

- ``config``: the ``[tools]`` section of ``opsloop.toml``;
- ``registry``: ``ToolRegistry`` (``build``, ``tools_for``, ``call``, ``check``, ``aclose``);
- ``values``: ``Caller``, ``ToolSpec``, ``ToolOutcome``, ``ToolCheck``;
- ``params`` and ``schema``: argument validation; ``access``: who may call what;
- ``kind_command``, ``kind_http``, ``kind_mcp``: the executors; ``errors``: their errors.

The package imports nothing heavy on import: ``mcp`` is imported when an MCP tool is built.
"""
