"""``python -m tracseq_kit.gateway --config gateway.toml [--host H] [--port P]``."""

from tracseq_kit.gateway._cli import main

if __name__ == "__main__":
    main()
