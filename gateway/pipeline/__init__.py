"""The stages a clip passes through, from the dock to the archive.

In the order a clip meets them (docs/architecture.md draws the way):

``session``     one dock: probe, unlock, identify, clock, storage switch, list
``buffers``     one memory budget for every slot's copy buffers
``ingest``      pull one clip: copy and SHA-256 in one pass, durably
``pullcommit``  group commit of a slot's pulls into staging and the catalog
``staging``     the content-addressed store of pulled clips
``stamp``       worker: staged -> stamped (signed manifest, custody log)
``events``      where recorded events go besides the outbox (custody, logs)
``forward``     worker: stamped -> archived, read back and verified
``release``     free the recorder of what the archive holds, per policy
``purge``       free staging of what the archive has held long enough
``recovery``    start-up: a catalog behind the custody log is caught up
``live``        what each slot is doing right now (not persistent)
"""
