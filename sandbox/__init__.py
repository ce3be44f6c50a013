"""opsloop's sandbox: helper blocks run in nsjail under hard limits (see docs/sandbox.md).

limits, result, request   the values crossing the port (Limits, RunResult) and validation
binary, layout, cgroups   what this host offers: the nsjail binary, mounts and interpreters,
                          which cgroups can cap a jail (and tell an OOM kill)
argv                      the pure function building nsjail's command line
process                   the one place processes start (capped output, wait4 CPU time)
workspace                 per-conversation workspaces: caps, own uids, expiry, records
images, quota, uids       ext4-image workspaces, the polled caps of directory ones, uid ranges
tree                      bounded, fd-relative walks of every tree a jail wrote
rundir, runs              per-run scratch dirs, and what every run does around its process
jail, unsafe              the in-process sandbox, and the rlimits-only unsafe-local mode
relay, toolclient         a run's tool channel (socket, frame rules, bounds) and the jail's
jailside/                 client files: the ``tools`` module and the ``tool`` command
mounts                    named read-only mounts at /mnt/NAME
service, client           the HTTP service and its client (the same port); the service's
wire, http_guard, listen  wire format, connection guard, and listening socket
admission, service_ws     its queue and gate, and runs with tools over a WebSocket
client_ws, client_status  the client's side of that WebSocket, and what answers mean to it
check                     what ``opsloop sandbox check`` / ``opsloop doctor`` report

Nothing here imports the rest of opsloop.
"""
