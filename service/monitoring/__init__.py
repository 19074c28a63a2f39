"""What the service judges and keeps of the stream: window and performance evaluation,
reference profiles, report rendering, the consumer's stall and dead-letter watches,
watermarks and table retention. Built by :mod:`service.wiring`, run by the scheduler."""
