"""Bring-up aids: the self-checking test layer runner and the UART that reports it."""
