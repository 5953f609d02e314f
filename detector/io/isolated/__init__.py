"""The sandboxed decoder: a child process with memory, time and size limits."""
