"""opsloop's sandbox: helper blocks run in nsjail under hard limits (see docs/sandbox.md).

limits, result, request   the values crossing the port (Limits, RunResult) and validation
binary, layout, cgroups   what this host offers: the nsjail binary, mounts and interpreters,
                          which cgroups can cap a jail
argv                      the pure function building nsjail's command line
process                   the one subprocess call site (asyncio, capped output)
workspace                 per-conversation workspaces and per-run scratch directories
jail, unsafe              the in-process sandbox, and the rlimits-only unsafe-local mode
service, client           the HTTP service and its client (the same port); the service's
wire, http_guard, listen  wire format, connection guard, and listening socket
check                     what ``opsloop sandbox check`` / ``opsloop doctor`` report

Nothing here imports the rest of opsloop.
"""
