"""The audit: ``verify`` recomputes each conversation's hash chain, ``replay`` renders a
timeline for people (text, markdown) and tools (JSON)."""
