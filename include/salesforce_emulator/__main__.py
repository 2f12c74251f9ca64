"""``python -m include.salesforce_emulator --port PORT --state-dir DIR ...`` (see README.md)."""

from .server import main

if __name__ == "__main__":
    main()
