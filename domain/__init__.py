"""The pure model: the ``Conversation`` aggregate and its events, the helper-block parser,
the loop's decision (``next_step``), limits, tokens, redaction. No I/O, no clock, no env."""
