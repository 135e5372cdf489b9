"""``python -m tracseq_kit.eventsourcing {migrate,status,rebuild} [--dsn DSN]``."""

from tracseq_kit.eventsourcing._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
