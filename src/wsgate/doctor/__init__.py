"""`wsgate doctor URL`: probe a WebSocket URL layer by layer and name what is wrong.

`probe.py`, `idle.py` and `burst.py` do the I/O and record `observations`; `verdicts.py`
and `signatures.py` are pure and turn them into findings; `report.py` prints them.
"""
