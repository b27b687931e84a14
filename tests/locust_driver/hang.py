"""A stand-in for the driver's master and workers that hangs without a word (the test of the
driver's bound on a master that stops answering runs it in their place)."""

import time

if __name__ == "__main__":
    time.sleep(600)
