"""The station screen and supervisor review (docs/web.md).

``app``: the server (a supervised worker of the daemon); ``station``: the
officers' screen; ``review``: the supervisors' pages; ``stats``: statistics
and dispatch import; ``accounts``: accounts, PINs and lock-outs; ``cli``:
``dockgate web-user`` and ``dockgate web-pin``. Nothing is imported here, so
the command line does not load the web server to add an account."""
