"""A Lambda-style function platform: sandboxes running the official Runtime Interface Emulator,
cold and warm starts, reserved and provisioned concurrency, keep-alive reaping, and Lambda's
Invoke API on loopback. Where a sandbox runs (a process, a container) is a ``Launcher``'s
business, so the local and container backends share everything else."""
