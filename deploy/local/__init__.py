"""`make run` / `make test` helpers: embedded PostgreSQL and Redis when none are configured."""
