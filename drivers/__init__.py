"""Recorder access: the driver contract, detection backends, protocol families
and the simulator. Nothing in here knows about the catalog or the archive."""

#: the protocol families a profile may name (drivers/families.py has one entry each); here, not in
#: drivers.profiles, so that the CLI's parser offers them without importing the schema (pydantic)
PROTOCOLS = ("ums", "amba-ctrl", "amba-ascii", "zfy-ctrl", "bc-text", "e12-tcp", "zzx-json", "dv16-scsi")
