"""Test infrastructure: a real Kafka broker, a real PostgreSQL, and helpers around them."""
