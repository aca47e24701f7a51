"""What scoring tells an operator, once per change: alarm episodes opened and resolved
(:mod:`.events`), data conditions started and cleared (:mod:`.conditions`), and where the
messages go besides stderr (:mod:`.sinks`).

Everything here is plain data that fits in the score state file (JSON), so that a cron call
knows what the previous one already said.
"""
