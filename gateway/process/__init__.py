"""The process around the pipeline: ``daemon`` wires the stages, telemetry
and the web together and drains on SIGTERM; ``supervise`` restarts crashing
workers; ``runfiles`` holds the instance lock and the status snapshot;
``logsetup`` the journal-friendly logging. Only ``daemon`` sits on top; the
other three are tools every layer may use (docs/architecture.md)."""
