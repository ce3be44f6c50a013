"""What a run with tools finds in its jail, copied into its scratch directory per run.

tools   mounted read-only at /opsloop/tools.py: ``import tools; tools.NAME(...)``
tool    mounted read-only at /opsloop/bin/tool (on PATH): ``tool NAME key=value``

Both run on the jail's own ``/usr/bin/python3`` with the standard library only, and import
nothing of opsloop (the jail has none of it).
"""
