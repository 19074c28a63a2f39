"""Development tooling, not part of the service: a local Kafka broker and the demo."""
