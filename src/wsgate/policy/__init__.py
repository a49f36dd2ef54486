"""Pure policies for the gateway: admission, limits, balancing, health, retries.

Nothing here reads a clock or touches a socket: every decision takes `now` (seconds, any
monotonic origin) and events as arguments, so tests drive it with a fake clock.
"""
