"""The web console: see the queue, hear the results, submit and retry from a browser.

Served by the daemon itself (`[web] enabled = true`), from the folders alone, so it shows every daemon
on the share and never gives another verdict than the folders do.
"""
