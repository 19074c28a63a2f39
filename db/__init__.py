"""SQL store: typed SQLAlchemy 2.0 models, repositories, sessions, migrations.

Repositories flush and never commit; the caller owns the transaction, which is
what lets aggregates and consumer offsets land in one commit.
"""
