"""Evidence: what makes a staged clip something a court can rely on.

``manifest``: the signed record of one clip (the five items the rules
require, and where each came from) and its amendments; ``container``: facts
read from the media file itself; ``custody``: the hash-chained, signed log of
every hand a clip passes through; ``signing`` and ``canonical``: the station
key and the one byte form that is signed; ``verify``: checking an archive
without trusting the station.
"""
