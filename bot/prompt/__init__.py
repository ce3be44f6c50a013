"""What the model is told: ``system`` (the system prompt and history as text), ``context``
(fitting it to the window), ``builder`` (the loop's timeline -> prompt, from the policy)."""
