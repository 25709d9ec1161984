"""Questions the real model answers at length.

A sampled 0.5B model refuses "write a long story" about one time in three ("I'm sorry,
but I can't assist with that request."); it writes a numbered list every time, and the
list's lines make the reply tall on the page as well as long.
"""

LONG_REPLY_QUESTION = (
    "Write a numbered list of 60 animals, one per line, with a short sentence about each."
)
