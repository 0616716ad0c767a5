"""The archivist's case file: what leaves the archive for a court.

``source``: which clips, manifests, amendments and custody belong to a case,
read from the archive; ``bag``: ``dockgate case export`` (BagIt, RFC 8493);
``catalogue``: the 文件目录.XML catalogue and 说明文件; ``checks``: the
four-properties check (DA/T 70) that export writes and ``verify --bag``
repeats; ``report``: the chain-of-custody report (HTML, PDF).
"""
