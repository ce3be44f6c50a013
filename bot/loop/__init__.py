"""The loop: ``runner`` performs one recorded step at a time, ``service`` is the
``ChatService`` surfaces call, ``commands`` carries out the thread commands once for all."""
