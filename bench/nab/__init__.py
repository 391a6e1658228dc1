"""``make bench-nab``: detectors run causally over the NAB series (``run``), scored by ``score``."""
